//! Commands stranded by a failover: a command the broker acknowledged in
//! the moment before it died may never have reached its node. Once the
//! failover service declared that broker OFFLINE and the node confirmed its
//! new broker, every such command (SENT, no answer yet) is published again
//! there. The node executes a `cmd_id` once, so a command that did arrive
//! is answered again, not run twice. One bridge instance does it at a time:
//! the holder of the sweeper's lease.

use std::time::Duration;

use common::commands::{CommandError, CommandSender, find_target};
use common::metrics as m;
use common::runtime::leader_ticks::LeaderTicks;
use common::runtime::lease::LeaseGuard;
use common::store::commands::{self, Stranded};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often stranded commands are looked for.
pub const EVERY: Duration = Duration::from_secs(1);

/// Publishes stranded commands again while this instance holds the lease.
pub async fn run(
    pool: PgPool,
    sender: CommandSender,
    lease: LeaseGuard,
    shutdown: CancellationToken,
) {
    let mut turns = LeaderTicks::new(lease, EVERY);
    while turns.next(&shutdown).await.is_some() {
        let commands = match commands::stranded(&pool).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "Could not look for stranded commands; will retry.");
                continue;
            }
        };
        for Stranded {
            cmd_id,
            cmd,
            params,
            node_uid: node,
            channel,
        } in commands
        {
            let Ok(Some(target)) = find_target(&pool, &node, &channel).await else {
                continue;
            };
            let params = match params {
                Value::Object(p) => p,
                _ => Default::default(),
            };
            match sender.republish(&target, &cmd_id, &cmd, params).await {
                Ok(broker) => {
                    metrics::counter!(m::COMMAND_REROUTES, "outcome" => "republished").increment(1);
                    info!(%cmd_id, %node, %broker, "Command stranded on a dead broker published again.");
                }
                Err(e @ CommandError::NotPublished { .. }) => {
                    warn!(%cmd_id, %node, error = %e, "Could not publish a stranded command again; will retry.")
                }
                Err(e) => warn!(%cmd_id, error = %e, "Could not record a republished command."),
            }
        }
    }
}
