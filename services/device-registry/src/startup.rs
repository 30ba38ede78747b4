//! Wiring: database, connections to every broker of the `brokers` table
//! (following it), the shared subscriptions (hello, temp namespace,
//! config_report), the inbox consumer, the bind expiry, the dynsec admin
//! connections and the node-account sync (when `MQTT_ADMIN_USER` is set),
//! and the HTTP server with its bearer-token API.

use common::QoS;
use common::mqtt::accounts::{RESPONSE_TOPIC, Responses};
use common::mqtt::pool::BrokerPool;
use common::runtime::auth::ApiToken;
use common::runtime::service::Base;
use common::settings::{Settings, Uses};
use proto::topics::{GLOBAL_NODE_HELLO, TEMP_GREENHOUSE, TEMP_ZONE, TopicKind};
use tokio::sync::mpsc;
use tracing::warn;

use crate::accounts::Accounts;
use crate::pushes::Registry;
use crate::settings::DeviceSettings;
use crate::uplink::Uplink;
use crate::{DEFAULT_PORT, SERVICE, binds, routes};

/// The shared-subscription filters of group `group`: both hello topics, the
/// whole temp namespace, and every node's config_report.
pub fn filters(group: &str) -> Vec<String> {
    vec![
        format!("$share/{group}/{GLOBAL_NODE_HELLO}"),
        TopicKind::NodeHello.shared_filter(group),
        format!("$share/{group}/hydro/{TEMP_GREENHOUSE}/{TEMP_ZONE}/#"),
        TopicKind::ConfigReport.shared_filter(group),
    ]
}

common::service_app! {
    /// A built registry, listening but not yet serving.
    pub struct App {}
}

impl App {
    /// Connects to PostgreSQL (migrating it) and to every broker, subscribes,
    /// starts the background work and binds `HTTP_PORT` (0 picks a free port).
    pub async fn build(settings: Settings, device: DeviceSettings) -> anyhow::Result<App> {
        let api_token = device.api_token(settings.http.api_token.as_ref());
        let uses = Uses::backend([
            Uses::ApiToken {
                name: "DEVICE_REGISTRY_API_TOKEN (or BRIDGE_API_TOKEN)",
                value: api_token,
            },
            // Without it no node gets its own broker account.
            Uses::Secret {
                name: "MQTT_ADMIN_PASS (with MQTT_ADMIN_USER)",
                value: device.admin_login().map(|(_, pass)| pass),
            },
            Uses::Secret {
                name: "MQTT_PROVISION_PASS",
                value: device.mqtt_provision_pass.as_ref(),
            },
        ]);
        let base = Base::start(SERVICE, &settings, &uses).await?;
        let (pool, stop, tasks) = (base.pool.clone(), base.stop.clone(), base.tasks.clone());
        let token = ApiToken::from_secret(api_token);

        let (inbox_tx, inbox_rx) = mpsc::channel(4096);
        let brokers =
            BrokerPool::connect_following(&settings, &pool, SERVICE, Some(inbox_tx), &stop, |_| {})
                .await?;
        for filter in filters(settings.mqtt.share_group_or(SERVICE)) {
            brokers.subscribe_all(&filter, QoS::AtLeastOnce)?;
        }

        tasks.spawn(
            Uplink::new(pool.clone(), device.unbound_write_interval()).run(inbox_rx, stop.clone()),
        );
        tasks.spawn(binds::expire_loop(
            pool.clone(),
            device.expiry_interval(),
            stop.clone(),
        ));

        let accounts = match device.admin_login() {
            Some((user, pass)) => {
                let (responses, admin_inbox) = Responses::start(stop.clone());
                let (user, pass) = (user.to_owned(), pass.clone());
                let admins = BrokerPool::connect_following(
                    &settings,
                    &pool,
                    &format!("{SERVICE}-admin"),
                    Some(admin_inbox),
                    &stop,
                    move |c| {
                        c.username = Some(user.clone());
                        c.password = Some(pass.clone());
                    },
                )
                .await?;
                admins.subscribe_all(RESPONSE_TOPIC, QoS::AtLeastOnce)?;
                let accounts = Accounts::new(pool.clone(), admins, responses);
                tasks.spawn(
                    accounts
                        .clone()
                        .reconcile_loop(device.account_sync_interval(), stop.clone()),
                );
                Some(accounts)
            }
            None => {
                warn!(
                    "MQTT_ADMIN_USER is not set: node broker accounts are not managed (brokers without authentication only)."
                );
                None
            }
        };
        if device.mqtt_provision_pass.is_none() {
            warn!(
                "MQTT_PROVISION_PASS is not set: an unbind's NodeConfig carries no broker login."
            );
        }
        let registry = Registry {
            pool: pool.clone(),
            brokers: brokers.clone(),
            default_secret: settings.node_default_secret.clone(),
            default_broker_url: settings.mqtt.default_broker_url(),
            bind_ttl: device.bind_ttl(),
            accounts,
            provision_login: device
                .mqtt_provision_pass
                .clone()
                .map(|pass| (device.mqtt_provision_user.clone(), pass)),
        };
        // Reads show nodes and binds; they were always guarded here and stay
        // so unless HTTP_READS_REQUIRE_TOKEN=false.
        let api = routes::router(registry);
        let health = base.health(&brokers);
        let runner = base
            .bind_api(&settings, DEFAULT_PORT, api, token, true, health, brokers)
            .await?;
        Ok(App { runner })
    }
}
