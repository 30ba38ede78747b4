//! What the deciding instance does (the holder of the `failover.decider`
//! lease, checked against the database before each act, so an instance that
//! lost the lease a moment ago does not act on it):
//!
//! - **failover**: mark the broker OFFLINE, open a `failover_events` row
//!   (or continue the open one), raise the `broker_offline` alert, give each
//!   of its nodes that can be moved a healthy broker by the active strategy,
//!   and tell them by the means they support (`common::placement::assignments::carry_out`:
//!   retained config/updates on every broker still up — where the nodes'
//!   fallback lists lead them). A node that cannot be moved (a firmware
//!   node, whose only broker is the dead one) is stranded: it stays
//!   assigned there, shown as stranded (`common::placement::observed`), until it is
//!   observed on a broker again and broker-registry follows it;
//! - **finish**: an event ends when every movable node left the broker and
//!   confirmed its new one and none is stranded (`finished_at` = the last
//!   confirmation), or at its deadline (`FAILOVER_EVENT_DEADLINE_SEC`)
//!   whatever is left; either way with its counts: `nodes_moved` and
//!   `details` `{moved, confirmed, stranded, all_confirmed}`;
//! - **recovery**: mark it GOOD, resolve the alert and publish every node's
//!   config/update on it again (what it kept from before is stale). Its
//!   former nodes stay where they are until a rebalance moves them.

use std::time::Duration;

use common::metrics as m;
use common::mqtt::pool::BrokerPool;
use common::placement::assignments::{self, snapshot};
use common::placement::balance::{self, Strategy};
use common::placement::broker_status::{self, BrokerStatus, Writer};
use common::store::alerts::{self, Subject};
use common::store::failover_events::{self, FinishedEvent};
use common::store::leases;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgPool;
use tracing::{error, info, warn};

use crate::detector::Signal;

/// The lease's name in the `leases` table.
pub const LEASE_NAME: &str = "failover.decider";
/// The alert a dead broker raises.
pub const ALERT_TYPE: &str = "broker_offline";
pub struct Actor {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    pub strategy: Strategy,
    pub holder: String,
    /// An event not settled by then is closed with what it has.
    pub event_deadline: Duration,
    /// `NODE_DEFAULT_SECRET`, for NodeConfig moves of nodes without a secret.
    pub default_secret: SecretString,
}

impl Actor {
    /// Whether the database still names this instance the holder.
    async fn holds(&self) -> Result<bool, sqlx::Error> {
        leases::is_held_by(&self.pool, LEASE_NAME, &self.holder).await
    }

    /// The broker is dead: see the module doc.
    pub async fn fail_over(
        &self,
        broker: &str,
        cause: Signal,
        failures: u32,
    ) -> Result<(), sqlx::Error> {
        if !self.holds().await? {
            return Ok(());
        }
        let reason = format!("failover: {} then {failures} failed probes", cause.as_str());
        if broker_status::set_status(
            &self.pool,
            broker,
            BrokerStatus::Offline,
            Writer::Failover,
            &reason,
        )
        .await?
        .is_some()
        {
            metrics::counter!(m::FAILOVERS, "broker" => broker.to_owned()).increment(1);
            metrics::gauge!(m::BROKER_STATUS, "broker" => broker.to_owned())
                .set(BrokerStatus::Offline.gauge());
            error!(broker, %reason, "Broker is dead; moving its nodes.");
        }
        let details = json!({ "cause": cause.as_str(), "failed_probes": failures, "decided_by": self.holder });
        failover_events::open(&self.pool, broker, &details).await?;
        alerts::raise(&self.pool, ALERT_TYPE, Subject::Broker(broker), &details).await?;
        self.evacuate(broker).await
    }

    /// Moves every node still assigned to the dead `broker`.
    pub async fn evacuate(&self, broker: &str) -> Result<(), sqlx::Error> {
        if !self.holds().await? {
            return Ok(());
        }
        let (brokers, nodes) = snapshot(&self.pool, Duration::ZERO).await?;
        let moves = balance::evacuate(self.strategy, &brokers, &nodes, broker);
        if moves.is_empty() {
            return Ok(());
        }
        let written = assignments::record_moves(&self.pool, &moves, "failover").await?;
        let (published, pushed) = assignments::carry_out(
            &self.pool,
            &self.brokers,
            &written,
            self.default_secret.expose_secret(),
        )
        .await?;
        let mut targets = serde_json::Map::new();
        for w in &written {
            let n = targets.entry(w.broker_id.clone()).or_insert(json!(0));
            *n = json!(n.as_i64().unwrap_or(0) + 1);
        }
        failover_events::add_moves(&self.pool, broker, written.len(), targets).await?;
        info!(
            broker,
            nodes = written.len(),
            configs = published,
            node_configs = pushed,
            "Nodes moved off the dead broker."
        );
        Ok(())
    }

    /// Closes the events that settled or reached their deadline, with their
    /// counts (see the module doc).
    pub async fn finish_events(&self) -> Result<(), sqlx::Error> {
        let done = failover_events::finish_settled_or_due(&self.pool, self.event_deadline).await?;
        for FinishedEvent {
            broker_id: broker,
            moved,
            confirmed,
            stranded,
            seconds: secs,
            settled,
        } in done
        {
            if settled {
                info!(
                    broker,
                    moved,
                    confirmed,
                    seconds = secs,
                    "Failover finished: every moved node confirmed."
                );
            } else {
                warn!(
                    broker,
                    moved,
                    confirmed,
                    stranded,
                    "Failover closed at its deadline; stranded nodes wait to reappear, unconfirmed moves may still land."
                );
            }
        }
        Ok(())
    }

    /// The dead broker answers again: see the module doc.
    pub async fn recovered(&self, broker: &str, probes: u32) -> Result<(), sqlx::Error> {
        if !self.holds().await? {
            return Ok(());
        }
        let reason = format!("recovered: {probes} good probes in a row");
        if broker_status::set_status(
            &self.pool,
            broker,
            BrokerStatus::Good,
            Writer::Failover,
            &reason,
        )
        .await?
        .is_none()
        {
            return Ok(());
        }
        metrics::gauge!(m::BROKER_STATUS, "broker" => broker.to_owned())
            .set(BrokerStatus::Good.gauge());
        alerts::resolve(&self.pool, ALERT_TYPE, Subject::Broker(broker)).await?;
        let all = assignments::all(&self.pool).await?;
        let published = assignments::announce(
            &self.pool,
            &self.brokers,
            &all,
            Some(broker),
            self.default_secret.expose_secret(),
        )
        .await?;
        info!(
            broker,
            configs = published,
            "Broker back: GOOD; node configs published there again."
        );
        Ok(())
    }
}
