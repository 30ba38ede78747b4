//! Publishing a command to a node that may be moving between brokers: the
//! command is not lost in the middle of a move.
//!
//! The first attempt goes to the broker the caller resolved (the node's
//! assignment, or the default broker). It succeeds at once when the broker
//! acknowledges it with a matching subscription — the normal case, costing
//! nothing extra. Otherwise:
//! - the broker took it but nobody is subscribed (MQTT 5 reason 0x10), or it
//!   did not take it (down, timed out), and
//! - the node's assignment names another broker, or a move to it is not yet
//!   confirmed, or the broker is down while another usable broker exists
//!   (a failover is to be expected), or the node has no assignment yet while
//!   other brokers exist (the registry is about to place it),
//!
//! then the command waits — polling the assignment every 200 ms, at most
//! [`MOVE_WAIT`] — for the move's confirmation and goes out on the node's new
//! broker. Past the wait it goes out on the assigned broker if it can. A node
//! that simply is offline (its assignment confirmed on a live broker) gets
//! its command as before; the timeout sweeper settles it.

use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;
use tokio::time::Instant;
use tracing::debug;

use crate::assignments;
use crate::brokers::BrokerPool;
use crate::metrics as m;
use crate::mqtt::{Delivery, MqttConnection, MqttError};

/// The longest a command waits for its node's move (failover included:
/// detection, decision and the node's reconnect take a few seconds).
pub const MOVE_WAIT: Duration = Duration::from_secs(15);
/// How often the assignment is read again while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Publishes `payload` to `topic` for node `node_id`, starting with
/// `first` (the resolved connection to `broker_id`). Returns the broker it
/// finally went to (or was last tried) and the outcome.
pub(crate) async fn publish_following(
    pool: &PgPool,
    brokers: &BrokerPool,
    node_id: i64,
    topic: &str,
    payload: Bytes,
    first: Result<MqttConnection, MqttError>,
    broker_id: String,
) -> (String, Result<(), MqttError>) {
    let deadline = Instant::now() + MOVE_WAIT;
    let mut broker_id = broker_id;
    let mut outcome = match &first {
        Ok(c) => c.publish_delivery(topic, payload.clone(), false).await,
        Err(e) => Err(e.clone()),
    };
    let mut waited = false;
    loop {
        if let Ok(Delivery::Matched) = outcome {
            if waited {
                metrics::counter!(m::COMMAND_REROUTES, "outcome" => "rerouted").increment(1);
            }
            return (broker_id, Ok(()));
        }
        let assignment = assignments::current(pool, node_id).await.ok().flatten();
        let moving = match &assignment {
            Some((assigned, confirmed)) => *assigned != broker_id || !confirmed,
            // Not assigned yet and not on this broker: with other brokers
            // about, the registry is about to place it (a node just booted).
            None => {
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
            metrics::counter!(m::COMMAND_REROUTES, "outcome" => "waited").increment(1);
        }
        tokio::time::sleep(POLL).await;
        // Go out on the confirmed new broker, or on the assigned one once
        // the wait is over ("or goes out on the new broker").
        let Some((assigned, confirmed)) = assignments::current(pool, node_id).await.ok().flatten()
        else {
            continue;
        };
        if !confirmed && Instant::now() + POLL < deadline {
            continue;
        }
        let Some(connection) = brokers.get(&assigned).filter(MqttConnection::is_connected) else {
            outcome = Err(MqttError::NotConnected);
            continue;
        };
        broker_id = assigned;
        outcome = connection
            .publish_delivery(topic, payload.clone(), false)
            .await;
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
