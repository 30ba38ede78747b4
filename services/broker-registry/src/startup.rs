//! Wiring: database, the broker list (seeded at first start), connections to
//! every broker of the list (following it), the message dispatcher (probe
//! echoes, `$SYS` figures, node statuses confirming moves), the health
//! monitor, the assignment engine under its lease, and the HTTP server.

use std::sync::Arc;

use common::mqtt::pool::BrokerPool;
use common::placement::balance::RebalanceLimits;
use common::placement::probe::Prober;
use common::runtime::auth::ApiToken;
use common::runtime::http::{Dependency, Health};
use common::runtime::service::Base;
use common::settings::{Settings, Uses};
use common::{QoS, placement::assignments};
use proto::topics::TopicKind;
use tokio::sync::mpsc;

use crate::advisor::Advisor;
use crate::engine::{self, Engine, EngineConfig};
use crate::health::Monitor;
use crate::registry;
use crate::registry::SeedBroker;
use crate::routes::{self, ApiState};
use crate::settings::RegistrySettings;
use crate::strategy::SharedStrategy;
use crate::sys_stats::{SYS_FILTER, SysStats};
use crate::{DEFAULT_PORT, SERVICE};

common::service_app! {
    /// A built registry, listening but not yet serving.
    pub struct App {}
}

impl App {
    /// Connects to PostgreSQL (migrating it), registers the configured
    /// brokers, connects to every broker of the list, starts the monitor and
    /// the engine and binds `HTTP_PORT` (0 picks a free port).
    pub async fn build(settings: Settings, registry: RegistrySettings) -> anyhow::Result<App> {
        let api_token = registry.api_token(settings.http.api_token.as_ref());
        let token = Uses::ApiToken {
            name: "BROKER_REGISTRY_API_TOKEN (or BRIDGE_API_TOKEN)",
            value: api_token,
        };
        let base = Base::start(SERVICE, &settings, &Uses::backend([token])).await?;
        let (pool, stop, tasks) = (base.pool.clone(), base.stop.clone(), base.tasks.clone());
        let mut seeds = registry.seed_brokers()?;
        if seeds.is_empty() {
            seeds.push(SeedBroker {
                id: settings.mqtt.broker_id.clone(),
                url: settings.mqtt.default_broker_url(),
                role: common::placement::balance::Role::Primary,
            });
        }
        registry::seed(&pool, &seeds).await?;

        let (inbox_tx, inbox_rx) = mpsc::channel(4096);
        let brokers = BrokerPool::connect(&settings, &pool, SERVICE, Some(inbox_tx), &stop).await?;
        let prober = Prober::new(SERVICE);
        let stats = SysStats::default();
        brokers.subscribe_all(&prober.filter(), QoS::AtLeastOnce)?;
        brokers.subscribe_all(SYS_FILTER, QoS::AtMostOnce)?;
        let group = settings.mqtt.share_group_or(SERVICE);
        brokers.subscribe_all(&TopicKind::Status.shared_filter(group), QoS::AtLeastOnce)?;
        brokers.subscribe_all(
            &TopicKind::ConfigReport.shared_filter(group),
            QoS::AtLeastOnce,
        )?;

        {
            let (prober, stats) = (prober.clone(), stats.clone());
            tasks.spawn(assignments::confirm_moves_from(
                inbox_rx,
                pool.clone(),
                stop.clone(),
                move |m| prober.on_message(m) || stats.on_message(m),
            ));
        }
        let monitor = Monitor {
            pool: pool.clone(),
            brokers: brokers.clone(),
            prober,
            stats,
            interval: registry.health_interval(),
        };
        tasks.spawn(monitor.run(stop.clone()));
        let strategy = SharedStrategy::new(registry.assignment_strategy);
        let limits = RebalanceLimits {
            threshold: registry.rebalance_threshold,
            max_moves: registry.rebalance_max_moves,
            fill_empty: registry.rebalance_fill_empty,
        };
        // A standby assigns within ~8 s of a dead holder.
        let lease = base.lease(engine::LEASE_NAME);
        let engine = Engine {
            pool: pool.clone(),
            brokers: brokers.clone(),
            config: EngineConfig {
                strategy: strategy.clone(),
                assign_interval: registry.assign_interval(),
                rebalance_interval: (registry.rebalance_interval_sec > 0)
                    .then(|| registry.rebalance_interval()),
                limits,
                cooldown: registry.move_cooldown(),
                move_timeout: registry.move_confirm_timeout(),
                default_secret: settings.node_default_secret.clone(),
            },
            lease,
        };
        tasks.spawn(engine.run(stop.clone()));

        let state = ApiState {
            pool: pool.clone(),
            brokers: brokers.clone(),
            strategy,
            limits,
            cooldown: registry.move_cooldown(),
            default_secret: settings.node_default_secret.clone(),
            advisor: Arc::new(Advisor::new(
                registry.advisor_model(),
                registry.advisor_model_interval(),
            )),
            stop: stop.clone(),
        };
        let health = Health::new(SERVICE)
            .require(Dependency::Postgres(pool.clone()))
            .optional(Dependency::Brokers(brokers.clone()));
        // Reads stay open by default: the dashboard at `/` polls them.
        let token = ApiToken::from_secret(api_token);
        let api = routes::router(state);
        let runner = base
            .bind_api(&settings, DEFAULT_PORT, api, token, false, health, brokers)
            .await?;
        Ok(App { runner })
    }
}
