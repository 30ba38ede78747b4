//! Taking up what is pending: the entries this consumer read before a
//! restart, and those dead consumers left behind; and the order lock of
//! batches that change node statuses.

use std::sync::Arc;

use common::metrics as m;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Shared, WriterConfig};
use crate::queue::Entry;
use proto::topics::TopicKind;

impl Shared {
    /// The `states` lock when `batch` changes node statuses; taken in reading
    /// order, before the batch is handed to its task.
    pub(super) async fn order_guard(&self, batch: &[Entry]) -> Option<OwnedMutexGuard<()>> {
        let changes = batch
            .iter()
            .filter_map(Entry::pack)
            .flat_map(|p| &p.messages)
            .any(|m| matches!(m.kind, TopicKind::Status | TopicKind::Lwt));
        if changes {
            Some(self.states.clone().lock_owned().await)
        } else {
            None
        }
    }

    /// Writes what this consumer read before a restart, then what dead
    /// consumers left behind.
    pub(super) async fn recover(self: &Arc<Self>, config: &WriterConfig, stop: &CancellationToken) {
        let mut after = "0".to_owned();
        loop {
            let read = self
                .queue
                .read_own_pending(&config.consumer, config.batch_size, &after)
                .await;
            match read {
                Ok(entries) if entries.is_empty() => break,
                Ok(entries) => {
                    after = entries.last().map(|e| e.id.clone()).unwrap_or(after);
                    info!(
                        entries = entries.len(),
                        "Writing entries left pending by this instance's last run."
                    );
                    self.clone().flush(entries, stop.clone(), None).await;
                }
                Err(e) => {
                    warn!(error = %e, "Cannot read this consumer's pending entries; the claim sweep will take them.");
                    break;
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
        self.claim_stale(config, stop).await;
    }

    /// Claims and writes entries other consumers have held too long.
    pub(super) async fn claim_stale(
        self: &Arc<Self>,
        config: &WriterConfig,
        stop: &CancellationToken,
    ) {
        let idle = u64::try_from(config.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let mut cursor = "0-0".to_owned();
        loop {
            let claimed = self
                .queue
                .autoclaim(&config.consumer, idle, &cursor, config.batch_size)
                .await;
            match claimed {
                Ok((next, entries)) => {
                    if !entries.is_empty() {
                        info!(
                            entries = entries.len(),
                            "Claimed entries a stopped consumer left pending."
                        );
                        let order = self.order_guard(&entries).await;
                        self.clone().flush(entries, stop.clone(), order).await;
                    }
                    if next == "0-0" || stop.is_cancelled() {
                        return;
                    }
                    cursor = next;
                }
                Err(e) => {
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    debug!(error = %e, "Claim sweep failed; next time.");
                    return;
                }
            }
        }
    }
}
