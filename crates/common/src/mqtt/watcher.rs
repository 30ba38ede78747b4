//! Follows the `brokers` table for a [`BrokerPool`]: LISTEN on the
//! `hydro_brokers` channel (a trigger of the schema announces every change
//! that matters to a connection), and compare the whole table with the pool
//! after each notification, after each reconnect of the listener (what
//! changed meanwhile was not announced to it) and every 30 s regardless.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::mqtt::pool::BrokerPool;

/// The NOTIFY channel of the `brokers` table's triggers.
pub const CHANNEL: &str = "hydro_brokers";
/// A full comparison this often, whatever was announced.
const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Runs until `shutdown`.
pub async fn follow(pool: PgPool, brokers: BrokerPool, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "Cannot listen for broker registry changes; retrying.");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        delay = Duration::from_millis(200);
        resync(&pool, &brokers).await;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESYNC_EVERY) => Ok(None),
                n = listener.try_recv() => n.map(|n| n.map(|_| ())),
            };
            match next {
                Ok(_) => {
                    // A burst of changes is one comparison.
                    while listener.next_buffered().is_some() {}
                    resync(&pool, &brokers).await;
                }
                Err(e) => {
                    warn!(error = %e, "Lost the broker registry listener; reconnecting.");
                    break;
                }
            }
        }
    }
}

/// Compares the table with the pool and adjusts the pool.
async fn resync(pool: &PgPool, brokers: &BrokerPool) {
    match brokers.desired(pool).await {
        Ok(desired) => {
            debug!(brokers = ?desired.keys().collect::<Vec<_>>(), "Broker registry read.");
            if let Err(e) = brokers.reconcile(desired, true) {
                warn!(error = %e, "Could not connect a broker of the registry.");
            }
        }
        Err(e) => warn!(error = %e, "Could not read the broker registry; will retry."),
    }
}
