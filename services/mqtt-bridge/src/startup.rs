//! Wiring: database, broker connections, the response consumer, the timeout
//! sweeper and the redelivery of stranded commands under their lease, and
//! the HTTP server.

use std::time::Duration;

use common::QoS;
use common::commands::CommandSender;
use common::commands::status_writer::StatusWriter;
use common::mqtt::pool::BrokerPool;
use common::runtime::service::Base;
use common::settings::{Settings, Uses};
use proto::topics::TopicKind;
use tokio::sync::mpsc;

use crate::auth::ApiToken;
use crate::routes::commands::{self, CommandsState};
use crate::{BridgeSettings, DEFAULT_PORT, SERVICE, redelivery, responses, sweeper};

common::service_app! {
    /// A built bridge, listening but not yet serving.
    pub struct App {}
}

impl App {
    /// Connects to PostgreSQL (migrating it) and the brokers, starts the
    /// background work and binds `HTTP_PORT` (0 picks a free port).
    pub async fn build(settings: Settings, bridge: BridgeSettings) -> anyhow::Result<App> {
        let token = Uses::ApiToken {
            name: "BRIDGE_API_TOKEN",
            value: settings.http.api_token.as_ref(),
        };
        let base = Base::start(SERVICE, &settings, &Uses::backend([token])).await?;
        let (pool, stop, tasks) = (base.pool.clone(), base.stop.clone(), base.tasks.clone());

        let (inbox_tx, inbox_rx) = mpsc::channel(8192);
        let brokers = BrokerPool::connect(&settings, &pool, SERVICE, Some(inbox_tx), &stop).await?;
        let group = settings.mqtt.share_group_or(SERVICE);
        brokers.subscribe_all(
            &TopicKind::CommandResponse.shared_filter(group),
            QoS::AtLeastOnce,
        )?;

        let status = StatusWriter::spawn(pool.clone());
        tasks.spawn(responses::run(
            pool.clone(),
            status.clone(),
            inbox_rx,
            stop.clone(),
        ));
        // A standby sweeps within ~8 s of a dead holder.
        let lease = base.lease(sweeper::LEASE_NAME);
        tasks.spawn(sweeper::run(
            pool.clone(),
            bridge.command_timeout(),
            lease.clone(),
            stop.clone(),
        ));

        let sender = CommandSender::new(
            pool.clone(),
            brokers.clone(),
            settings.node_default_secret.clone(),
            status,
        );
        tasks.spawn(redelivery::run(
            pool.clone(),
            sender.clone(),
            lease,
            stop.clone(),
        ));
        let state = CommandsState {
            pool: pool.clone(),
            sender,
            replay_wait: settings.mqtt.publish_timeout() + Duration::from_secs(1),
            targets: Default::default(),
            tasks: tasks.clone(),
        };
        let token = ApiToken::from_secret(settings.http.api_token.as_ref());
        // Reads (a command's status) were always guarded here; they stay so
        // unless HTTP_READS_REQUIRE_TOKEN=false.
        let api = commands::router(state);
        let health = base.health(&brokers);
        let runner = base
            .bind_api(&settings, DEFAULT_PORT, api, token, true, health, brokers)
            .await?;
        Ok(App { runner })
    }
}
