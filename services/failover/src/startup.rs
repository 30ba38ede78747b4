//! Wiring: database, connections to every broker of the registry (following
//! it), the message dispatcher (probe echoes, uplink for the silence signal,
//! node statuses confirming moves), the watcher with its lease, and the HTTP
//! server (`/metrics`, `/health`).

use common::mqtt::pool::BrokerPool;
use common::placement::probe::Prober;
use common::runtime::http::{Dependency, Health};
use common::runtime::service::Base;
use common::settings::{Settings, Uses};
use common::{QoS, placement::assignments};
use proto::topics::TopicKind;
use tokio::sync::mpsc;

use crate::actions::{self, Actor};
use crate::settings::FailoverSettings;
use crate::signals::Uplink;
use crate::watcher::Watcher;
use crate::{DEFAULT_PORT, SERVICE};

common::service_app! {
    /// A built failover instance, listening but not yet serving.
    pub struct App {
        holder: String,
    }
}

impl App {
    pub async fn build(settings: Settings, failover: FailoverSettings) -> anyhow::Result<App> {
        let base = Base::start(SERVICE, &settings, &Uses::backend([])).await?;
        let (pool, stop) = (base.pool.clone(), base.stop.clone());
        let (inbox_tx, inbox_rx) = mpsc::channel(8192);
        let brokers = BrokerPool::connect(&settings, &pool, SERVICE, Some(inbox_tx), &stop).await?;
        let prober = Prober::new(SERVICE);
        let uplink = Uplink::default();
        let group = settings.mqtt.share_group_or(SERVICE);
        brokers.subscribe_all(&prober.filter(), QoS::AtLeastOnce)?;
        for kind in [
            TopicKind::Telemetry,
            TopicKind::Heartbeat,
            TopicKind::Status,
        ] {
            brokers.subscribe_all(&kind.shared_filter(group), QoS::AtMostOnce)?;
        }

        {
            let (prober, uplink) = (prober.clone(), uplink.clone());
            base.tasks.spawn(assignments::confirm_moves_from(
                inbox_rx,
                pool.clone(),
                stop.clone(),
                move |m| prober.on_message(m) || uplink.on_message(m),
            ));
        }
        // A standby decides within ~8 s of a dead holder.
        let lease = base.lease(actions::LEASE_NAME);
        let holder = base.holder.clone();
        let watcher = Watcher {
            pool: pool.clone(),
            brokers: brokers.clone(),
            prober,
            uplink,
            actor: Actor {
                pool: pool.clone(),
                brokers: brokers.clone(),
                strategy: failover.assignment_strategy,
                holder: holder.clone(),
                event_deadline: failover.event_deadline(),
                default_secret: settings.node_default_secret.clone(),
            },
            settings: failover,
            lease,
        };
        base.tasks.spawn(watcher.run(stop));

        // Up while PostgreSQL is: a dead broker is what failover is for.
        let health = Health::new(SERVICE)
            .require(Dependency::Postgres(pool))
            .optional(Dependency::Brokers(brokers.clone()));
        let runner = base
            .bind_ops(&settings, DEFAULT_PORT, health, brokers)
            .await?;
        Ok(App { runner, holder })
    }

    /// This instance's lease holder id (as `failover_events.details.decided_by` names it).
    pub fn holder(&self) -> &str {
        &self.holder
    }
}
