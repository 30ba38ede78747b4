//! The timeout sweeper: a command with no final status `COMMAND_TIMEOUT_SEC`
//! after it was created becomes TIMEOUT. Exactly one bridge instance sweeps at
//! a time, the holder of the `mqtt-bridge.timeout-sweeper` lease.

use std::time::Duration;

use common::metrics as m;
use common::runtime::leader_ticks::LeaderTicks;
use common::runtime::lease::LeaseGuard;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The lease's name in the `leases` table.
pub const LEASE_NAME: &str = "mqtt-bridge.timeout-sweeper";

/// Marks overdue commands TIMEOUT; returns their `cmd_id`s.
pub async fn sweep(pool: &PgPool, timeout: Duration) -> Result<Vec<String>, sqlx::Error> {
    common::store::commands::time_out_overdue(pool, timeout).await
}

/// How often to sweep: often enough that a command is late by at most a
/// quarter of the timeout, never more than once a second less often.
pub fn interval_for(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(1))
}

/// Sweeps while this instance holds the lease, until `shutdown`.
pub async fn run(pool: PgPool, timeout: Duration, lease: LeaseGuard, shutdown: CancellationToken) {
    let mut turns = LeaderTicks::new(lease, interval_for(timeout));
    while turns.next(&shutdown).await.is_some() {
        match sweep(&pool, timeout).await {
            Ok(ids) if !ids.is_empty() => {
                metrics::counter!(m::COMMANDS_FINISHED, "status" => "TIMEOUT")
                    .increment(ids.len() as u64);
                info!(count = ids.len(), first = %ids[0], "Commands timed out.");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "Timeout sweep failed; will retry."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_bounds() {
        assert_eq!(
            interval_for(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(
            interval_for(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            interval_for(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
    }
}
