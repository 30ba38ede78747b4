//! Where a command for a node goes, decided in one place, and publishing it
//! to a node that may be moving between brokers, so the command is not lost
//! in the middle of a move.
//!
//! **The route**: the broker the node is *observed* on
//! (`nodes.observed_broker_id`, where its uplink last arrived) — unless its
//! assignment was confirmed there more recently than that observation (a
//! confirmation is an observation too: its status arrived there). Only when
//! nothing is observed does the assignment decide, and without one the
//! default broker. A command never goes to a broker the node has not joined
//! just because it was assigned there: a node that cannot follow a
//! `config/update` stays where it is. The SQL half of the rule is written
//! once, in [`crate::with_route_broker_sql!`] (read with every
//! [`crate::commands::Target`] and by [`crate::store::nodes::route_now`]);
//! the other half, no route meaning the default broker, is [`broker_for`].
//! A send decides its broker once, from its target, with [`broker_for`];
//! the pool only hands out the connection to that broker.
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
use crate::store::brokers;
use crate::store::nodes::{RouteNow, route_now};

/// The longest a command waits for its node's move (failover included:
/// detection, decision and the node's reconnect take a few seconds).
pub const MOVE_WAIT: Duration = Duration::from_secs(15);
/// How often the route is read again while waiting.
const POLL: Duration = Duration::from_millis(200);

/// The broker a command goes to, given its node's route broker (`None`:
/// the node has no route yet): that broker, else the pool's default one.
pub fn broker_for(route: Option<&str>, brokers: &BrokerPool) -> String {
    route.unwrap_or(brokers.default_id()).to_owned()
}

/// Publishes a command for node `node_id` on `topic`, first to `broker_id`
/// (decided by the caller with [`broker_for`]). `payload` makes the bytes of
/// one attempt (signed at that moment). Returns the broker it finally went
/// to (or was last tried) and the outcome.
pub(crate) async fn publish_following(
    pool: &PgPool,
    brokers: &BrokerPool,
    node_id: i64,
    topic: &str,
    payload: impl Fn() -> Bytes,
    broker_id: String,
) -> (String, Result<(), MqttError>) {
    let deadline = Instant::now() + MOVE_WAIT;
    let mut broker_id = broker_id;
    let mut outcome = match brokers.connection(&broker_id) {
        Ok(c) => c.publish_delivery(topic, payload(), false).await,
        Err(e) => Err(e),
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
        let to = broker_for(now.as_ref().and_then(|r| r.broker_id.as_deref()), brokers);
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
    brokers::other_usable(pool, broker_id)
        .await
        .unwrap_or(false)
}
