//! Following the current connection: online/offline, the replay on a
//! drop, the flush on a connect, and the fallback list while the broker
//! does not answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{NodeLink, connect, lock};

impl NodeLink {
    /// Replaces a dead connection with one to `url` (break before make).
    fn replace_with(&self, url: &str) {
        match connect(&self.config, url, &self.events, &self.stop) {
            Ok(next) => {
                let old = std::mem::replace(&mut lock(&self.state).current, next);
                old.stop.cancel();
            }
            Err(e) => {
                warn!(node = %self.uid, url, error = %e, "Cannot connect to a fallback broker.")
            }
        }
    }

    /// Follows the current connection: online/offline, the replay on a drop,
    /// the flush on a connect, and the fallback list while down.
    pub(super) async fn supervise(self: Arc<Self>) {
        let mut cursor = 0usize;
        let mut down_since = Some(Instant::now());
        loop {
            let connection = self.connection();
            let mut watch = connection.connected_watch();
            let up = *watch.borrow_and_update();
            if up {
                down_since = None;
                self.online.send_replace(true);
                let link = self.clone();
                let c = connection.clone();
                tokio::spawn(async move { link.flush(&c).await });
            } else {
                if self.online.send_replace(false) {
                    self.replay_recent();
                }
                down_since.get_or_insert_with(Instant::now);
            }
            let fallback_at = down_since.map(|d| d + self.config.fallback_after);
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.switched.notified() => {
                    cursor = 0;
                    down_since = Some(Instant::now());
                }
                changed = watch.changed() => {
                    if changed.is_err() {
                        // This connection ended (replaced); the loop takes the new one.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                _ = sleep_until(fallback_at) => {
                    let candidates = lock(&self.state).stored.candidates();
                    if candidates.len() == 1 {
                        // Nowhere else to go: the connection keeps retrying.
                        down_since = Some(Instant::now());
                        continue;
                    }
                    cursor = (cursor + 1) % candidates.len();
                    let url = &candidates[cursor];
                    info!(node = %self.uid, url = %url, "Broker unreachable; trying the next one.");
                    self.replace_with(url);
                    down_since = Some(Instant::now());
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
