//! Where a command for a node goes, decided in one place, and publishing it
//! to a node that may be moving between brokers, so the command is not lost
//! in the middle of a move.
//!
//! **The route** ([`route_broker_sql!`], used by every target lookup and by
//! the wait below): the broker the node is *observed* on
//! (`nodes.observed_broker_id`, where its uplink last arrived) — unless its
//! assignment was confirmed there more recently than that observation (a
//! confirmation is an observation too: its status arrived there). Only when
//! nothing is observed does the assignment decide, and without one the
//! default broker ([`crate::mqtt::pool::BrokerPool::route`]). A command never
//! goes to a broker the node has not joined just because it was assigned
//! there: a node that cannot follow a `config/update` stays where it is.
//!
//! **The wait**: the first attempt goes to the routed broker. It succeeds at
//! once when the broker acknowledges it with a matching subscription — the
//! normal case, costing nothing extra. Otherwise:
//! - the broker took it but nobody is subscribed (MQTT 5 reason 0x10), or it
//!   did not take it (down, timed out), and
//! - the node's route names another broker now, or its assignment has a
//!   move not yet confirmed, or the broker is down while another usable
//!   broker exists (a failover is to be expected), or the node has no route
//!   yet while other brokers exist (it is about to be placed or seen),
//!
//! then the command waits — reading the route every 200 ms, at most
//! [`MOVE_WAIT`] — and is published again whenever the route changed (the
//! node appeared on another broker, or its move was confirmed), and once
//! more at the end of the wait. Each attempt is signed afresh by the
//! caller's closure, so the `ts` a node sees is the moment of that publish
//! (the node's window is 10 s; the wait may be 15). A node that simply is
//! offline gets its command as before; the timeout sweeper settles it.

use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;
use tokio::time::Instant;
use tracing::debug;

use crate::metrics as m;
use crate::mqtt::pool::BrokerPool;
use crate::mqtt::{Delivery, MqttConnection, MqttError};

/// The longest a command waits for its node's move (failover included:
/// detection, decision and the node's reconnect take a few seconds).
pub const MOVE_WAIT: Duration = Duration::from_secs(15);
/// How often the route is read again while waiting.
const POLL: Duration = Duration::from_millis(200);

/// The SQL expression of a node's route broker (see the module doc), over
/// `nodes n` and `node_broker_assignments a` (LEFT JOINed); NULL means the
/// default broker. A macro so queries can `concat!` it into constants.
#[macro_export]
macro_rules! route_broker_sql {
    () => {
        "(CASE WHEN n.observed_broker_id IS NOT NULL \
               AND (a.confirmed_at IS NULL OR n.observed_at >= a.confirmed_at) \
          THEN n.observed_broker_id ELSE a.broker_id END)"
    };
}

/// A node's route now, and the state of its assignment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RouteNow {
    /// The broker commands go to (None: the default broker).
    pub broker_id: Option<String>,
    /// Its assigned broker, if it has an assignment.
    pub assigned: Option<String>,
    /// Whether that assignment's last move is confirmed.
    pub confirmed: bool,
}

/// Reads node `node_id`'s route (one indexed lookup).
pub async fn route_now(pool: &PgPool, node_id: i64) -> Result<Option<RouteNow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        route_broker_sql!(),
        " AS broker_id, a.broker_id AS assigned, COALESCE(a.confirmed_at IS NOT NULL, false) AS confirmed \
         FROM nodes n LEFT JOIN node_broker_assignments a ON a.node_id = n.id WHERE n.id = $1"
    ))
    .bind(node_id)
    .fetch_optional(pool)
    .await
}

/// Publishes a command for node `node_id` on `topic`, starting with `first`
/// (the resolved connection to `broker_id`). `payload` makes the bytes of
/// one attempt (signed at that moment). Returns the broker it finally went
/// to (or was last tried) and the outcome.
pub(crate) async fn publish_following(
    pool: &PgPool,
    brokers: &BrokerPool,
    node_id: i64,
    topic: &str,
    payload: impl Fn() -> Bytes,
    first: Result<MqttConnection, MqttError>,
    broker_id: String,
) -> (String, Result<(), MqttError>) {
    let deadline = Instant::now() + MOVE_WAIT;
    let mut broker_id = broker_id;
    let mut outcome = match &first {
        Ok(c) => c.publish_delivery(topic, payload(), false).await,
        Err(e) => Err(e.clone()),
    };
    let mut waited = false;
    // The route the last attempt was made under.
    let mut tried: Option<RouteNow> = None;
    loop {
        if let Ok(Delivery::Matched) = outcome {
            if waited {
                metrics::counter!(m::COMMAND_REROUTES, "outcome" => "rerouted").increment(1);
            }
            return (broker_id, Ok(()));
        }
        let now = route_now(pool, node_id).await.ok().flatten();
        let route = now.as_ref().and_then(|r| r.broker_id.clone());
        let moving = match (&now, &route) {
            (Some(r), Some(to)) => *to != broker_id || (r.assigned.is_some() && !r.confirmed),
            // Nowhere yet: with other brokers about, it is about to be
            // placed or seen (a node just booted).
            _ => {
                matches!(outcome, Ok(Delivery::NoSubscribers))
                    && other_broker_usable(pool, &broker_id).await
            }
        };
        let failover_expected =
            outcome.is_err() && !moving && other_broker_usable(pool, &broker_id).await;
        if !(moving || failover_expected) || Instant::now() >= deadline {
            if waited {
                metrics::counter!(m::COMMAND_REROUTES, "outcome" => "gave_up").increment(1);
            }
            return (broker_id, outcome.map(drop));
        }
        if !waited {
            debug!(node_id, broker = %broker_id, "Node moving or broker down; the command waits for the move.");
            waited = true;
            tried = now;
            metrics::counter!(m::COMMAND_REROUTES, "outcome" => "waited").increment(1);
        }
        tokio::time::sleep(POLL).await;
        // Publish again when the route changed since the last attempt (the
        // node was seen elsewhere, or its move confirmed), or at the end.
        let Ok(now) = route_now(pool, node_id).await else {
            continue;
        };
        let last_chance = Instant::now() + POLL >= deadline;
        if now == tried && !last_chance {
            continue;
        }
        let to = now
            .as_ref()
            .and_then(|r| r.broker_id.clone())
            .unwrap_or_else(|| brokers.default_broker().broker_id().to_owned());
        tried = now;
        let Some(connection) = brokers.get(&to).filter(MqttConnection::is_connected) else {
            outcome = Err(MqttError::NotConnected);
            continue;
        };
        broker_id = to;
        outcome = connection.publish_delivery(topic, payload(), false).await;
    }
}

/// Whether a broker other than `broker_id` could take the node (so a
/// failover can move it there).
async fn other_broker_usable(pool: &PgPool, broker_id: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM brokers WHERE enabled AND NOT draining \
                        AND status <> 'OFFLINE' AND id <> $1)",
    )
    .bind(broker_id)
    .fetch_one(pool)
    .await
    .unwrap_or(false)
}
