//! Moves: a `config/update` is checked ([`check_move`]), stored when newer
//! than the stored one, and followed by a make-before-break switch to the
//! broker it names (or the status again when the node is there already).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::mqtt::Inbound;
use proto::payloads::{ConfigUpdate, NodeState};
use proto::signing;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{DRAIN_WAIT, NodeLink, REFUSAL_LOG_EVERY_SECS, SWITCH_WAIT, Stored, connect, lock};
use crate::metrics as m;
use crate::node::MAX_CLOCK_SKEW_SECS;

/// Checks a move before it is applied (see the module doc): signed with
/// `secret`, and its `ts` within [`MAX_CLOCK_SKEW_SECS`] of `now` — or, for
/// a retained copy the broker `replayed` on subscribe, not from the future.
/// The error is the refusal's reason (`unsigned`, `bad_signature`, `stale`,
/// `future`).
pub fn check_move(
    config: &ConfigUpdate,
    secret: &[u8],
    replayed: bool,
    now: i64,
) -> Result<(), &'static str> {
    if config.sig.is_empty() {
        return Err("unsigned");
    }
    if !signing::verify_config_update(secret, config) {
        return Err("bad_signature");
    }
    if config.ts - now >= MAX_CLOCK_SKEW_SECS {
        return Err("future");
    }
    if !replayed && now - config.ts >= MAX_CLOCK_SKEW_SECS {
        return Err("stale");
    }
    Ok(())
}

impl NodeLink {
    /// Takes config/updates; passes everything else on to the node.
    pub(super) async fn dispatch(self: Arc<Self>, mut events: mpsc::Receiver<Inbound>) {
        loop {
            let message = tokio::select! {
                _ = self.stop.cancelled() => return,
                m = events.recv() => match m { Some(m) => m, None => return },
            };
            if message.topic == self.config.config_topic {
                self.on_config(&message).await;
            } else if self.commands.send(message).await.is_err() {
                return;
            }
        }
    }

    async fn on_config(&self, message: &Inbound) {
        let config = match ConfigUpdate::decode(&message.payload) {
            Ok(c) => c,
            Err(e) => {
                self.refuse_move("invalid", &e.to_string());
                return;
            }
        };
        // The broker flags a retained message only when it replays it on
        // subscribe; one published while the node listens arrives unflagged.
        if let Err(reason) = check_move(
            &config,
            &self.config.secret,
            message.retain,
            chrono::Utc::now().timestamp(),
        ) {
            self.refuse_move(reason, &format!("ts {}", config.ts));
            return;
        }
        let target = {
            let mut state = lock(&self.state);
            if config.ts <= state.stored.ts {
                return; // already applied, or a stale retained copy
            }
            state.stored = Stored {
                url: config.mqtt_broker.clone(),
                fallback: config.fallback.clone(),
                ts: config.ts,
            };
            (state.current.url != config.mqtt_broker).then(|| config.mqtt_broker.clone())
        };
        match target {
            None => {
                // Already there: say so, which confirms the move.
                debug!(node = %self.uid, broker = %config.broker_id, "Config names the current broker.");
                self.publish_status(NodeState::Online).await;
            }
            Some(url) => {
                info!(node = %self.uid, broker = %config.broker_id, url = %url, "Config update: switching broker.");
                self.switch_to(&url).await;
            }
        }
    }

    /// Counts a refused move, and logs it unless one was logged lately.
    fn refuse_move(&self, reason: &'static str, detail: &str) {
        metrics::counter!(m::MOVES_REFUSED, "reason" => reason).increment(1);
        let now = chrono::Utc::now().timestamp();
        let last = self.refusal_logged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= REFUSAL_LOG_EVERY_SECS
            && self
                .refusal_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(node = %self.uid, reason, detail, "Config/update refused; not applied.");
        }
    }

    /// Make before break: connect to `url`, wait until it answers (at most
    /// [`SWITCH_WAIT`]), make it current, then let the old connection finish
    /// its publishes and leave with a DISCONNECT (no last will).
    async fn switch_to(&self, url: &str) {
        let next = match connect(&self.config, url, &self.events, &self.stop) {
            Ok(c) => c,
            Err(e) => {
                warn!(node = %self.uid, url, error = %e, "Cannot switch broker.");
                return;
            }
        };
        let _ = next.connection.wait_connected(SWITCH_WAIT).await;
        let old = {
            let mut state = lock(&self.state);
            if state.stored.url != url {
                // A newer config arrived meanwhile; it does its own switch.
                next.stop.cancel();
                return;
            }
            std::mem::replace(&mut state.current, next)
        };
        self.switched.notify_one();
        let deadline = Instant::now() + DRAIN_WAIT;
        while old.connection.pending_publishes() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        old.connection.disconnect().await;
        old.stop.cancel();
    }
}
