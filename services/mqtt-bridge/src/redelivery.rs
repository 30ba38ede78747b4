//! Commands stranded by a failover: a command the broker acknowledged in
//! the moment before it died may never have reached its node. Once the
//! failover service declared that broker OFFLINE and the node confirmed its
//! new broker, every such command (SENT, no answer yet) is published again
//! there. The node executes a `cmd_id` once, so a command that did arrive
//! is answered again, not run twice. One bridge instance does it at a time:
//! the holder of the sweeper's lease.

use std::time::Duration;

use common::commands::{CommandSender, find_target};
use common::metrics as m;
use common::runtime::lease::LeaseGuard;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often stranded commands are looked for.
pub const EVERY: Duration = Duration::from_secs(1);

/// A stranded command: (cmd_id, cmd, params, node uid, channel).
type Stranded = (String, String, Value, String, String);

/// Open SENT commands on an OFFLINE broker whose node is now routed to
/// another broker where it really is (observed there, or its move there
/// confirmed).
pub async fn stranded(pool: &PgPool) -> Result<Vec<Stranded>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT c.cmd_id, c.cmd, c.params, n.uid, c.channel FROM commands c \
         JOIN brokers b ON b.id = c.broker_id AND b.status = 'OFFLINE' \
         JOIN nodes n ON n.id = c.node_id \
         LEFT JOIN node_broker_assignments a ON a.node_id = c.node_id \
         WHERE c.finished_at IS NULL AND c.status = 'SENT' AND ",
        common::route_broker_sql!(),
        " <> c.broker_id \
           AND (a.confirmed_at IS NOT NULL OR n.observed_broker_id = ",
        common::route_broker_sql!(),
        ") ORDER BY c.cmd_id LIMIT 500"
    ))
    .fetch_all(pool)
    .await
}

/// Publishes stranded commands again while this instance holds the lease.
pub async fn run(
    pool: PgPool,
    sender: CommandSender,
    lease: LeaseGuard,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !lease.is_held() {
            continue;
        }
        let commands = match stranded(&pool).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "Could not look for stranded commands; will retry.");
                continue;
            }
        };
        for (cmd_id, cmd, params, node, channel) in commands {
            let Ok(Some(target)) = find_target(&pool, &node, &channel).await else {
                continue;
            };
            let params = match params {
                Value::Object(p) => p,
                _ => Default::default(),
            };
            match sender.republish(&target, &cmd_id, &cmd, params).await {
                Ok(Ok(broker)) => {
                    metrics::counter!(m::COMMAND_REROUTES, "outcome" => "republished").increment(1);
                    info!(%cmd_id, %node, %broker, "Command stranded on a dead broker published again.");
                }
                Ok(Err(e)) => {
                    warn!(%cmd_id, %node, error = %e, "Could not publish a stranded command again; will retry.")
                }
                Err(e) => warn!(%cmd_id, error = %e, "Could not record a republished command."),
            }
        }
    }
}
