//! The rhythm of a singleton job under a [`crate::lease`]: act every
//! period while this process holds the lease, and at once when it gains it
//! (at start, or when the holder died), so a standby does not wait a whole
//! period before taking the work over.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::lease::LeaseGuard;

/// Why it is time to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// This process has just gained the lease: state kept from an earlier
    /// term may be stale.
    Gained,
    /// A regular tick while holding the lease.
    Held,
}

/// Yields the moments a lease holder should act.
pub struct LeaderTicks {
    lease: LeaseGuard,
    tick: Interval,
    leading: bool,
}

impl LeaderTicks {
    pub fn new(lease: LeaseGuard, every: Duration) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        LeaderTicks {
            lease,
            tick,
            leading: false,
        }
    }

    /// Waits for the next turn; `None` once `stop` is cancelled.
    pub async fn next(&mut self, stop: &CancellationToken) -> Option<Turn> {
        loop {
            if !self.lease.is_held() {
                self.leading = false;
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = self.lease.wait_held() => {}
                }
            }
            if !self.leading {
                self.leading = true;
                self.tick.reset();
                return Some(Turn::Gained);
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = self.tick.tick() => {}
            }
            if self.lease.is_held() {
                return Some(Turn::Held);
            }
        }
    }

    /// Whether this process holds the lease right now.
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }
}
