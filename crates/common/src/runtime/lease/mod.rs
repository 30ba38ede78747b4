//! A lease for singleton jobs (timeout sweeper, failover, assignment,
//! scheduler firing), held in PostgreSQL's `leases` table.
//!
//! The holder renews every `ttl / 3`; a lease whose `expires_at` has passed
//! can be taken by anyone. Expiry is judged by the database clock, so the
//! instances' wall clocks do not matter. A holder that fails to renew
//! (database error, or someone else took it) stops acting at once; a holder
//! that dies is replaced by a standby within `ttl + ttl / 3`. On shutdown the
//! lease is released so the standby takes over at its next attempt.
//!
//! The holder is also fenced by a local deadline. Before each acquire or
//! renewal it notes the instant on its own monotonic clock; when the attempt
//! succeeds, it may act until `sent_at + ttl - ttl / 5`. The database set
//! `expires_at` to its `now() + ttl` *after* that instant, so the holder stops
//! before any standby can take the lease, whether or not the next renewal
//! ever answers (a hung or partitioned PostgreSQL). The margin covers a
//! difference in clock rates and the moment between a check and the act.

use std::time::Duration;

use tokio::time::Instant;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics as m;
use crate::store::leases;

/// A lease this process competes for.
#[derive(Debug, Clone)]
pub struct Lease {
    pool: PgPool,
    name: String,
    holder: String,
    ttl: Duration,
}

/// The part of the TTL a holder gives up, to be sure it has stopped acting
/// before the database says the lease expired.
pub fn safety_margin(ttl: Duration) -> Duration {
    ttl / 5
}

/// Until when this process may act: `None` when it does not hold the lease.
type Deadline = Option<Instant>;

/// What a guard sees: the deadline, and how many terms of holding have
/// begun (a term ends when the hold is lost or its deadline passes).
#[derive(Debug, Clone, Copy, Default)]
struct Hold {
    until: Deadline,
    term: u64,
}

/// Watches whether this process holds the lease.
#[derive(Debug, Clone)]
pub struct LeaseGuard {
    held: watch::Receiver<Hold>,
}

fn live(deadline: &Deadline) -> bool {
    deadline.is_some_and(|d| Instant::now() < d)
}

impl LeaseGuard {
    /// Whether this process may act right now: it holds the lease and its
    /// local deadline (from the last successful acquire or renewal) has not
    /// passed. Turns false by the clock alone, while a renewal hangs.
    pub fn is_held(&self) -> bool {
        live(&self.held.borrow().until)
    }

    /// Until when this process may act, if it holds the lease.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.borrow().until.filter(|d| Instant::now() < *d)
    }

    /// How many terms of holding have begun. A new term begins whenever the
    /// lease is held again after being lost or after its deadline passed,
    /// however short the gap: another instance may have acted in it.
    pub fn term(&self) -> u64 {
        self.held.borrow().term
    }

    /// Waits until this process holds the lease.
    pub async fn wait_held(&mut self) {
        loop {
            if self.held.wait_for(|h| live(&h.until)).await.is_err() {
                // The lease task is gone: never held again.
                return std::future::pending().await;
            }
            if self.is_held() {
                return;
            }
        }
    }
}

/// Tracks the local deadline; shared by the lease task and its guards.
#[derive(Debug)]
struct Fence {
    tx: watch::Sender<Hold>,
    ttl: Duration,
}

impl Fence {
    fn new(ttl: Duration) -> (Self, LeaseGuard) {
        let (tx, rx) = watch::channel(Hold::default());
        (Fence { tx, ttl }, LeaseGuard { held: rx })
    }

    /// Records the outcome of an attempt sent at `sent_at`; returns whether
    /// this process holds the lease now.
    fn record(&self, sent_at: Instant, held: bool) -> bool {
        let deadline = held.then(|| sent_at + self.ttl - safety_margin(self.ttl));
        self.tx.send_modify(|hold| {
            if live(&deadline) && !live(&hold.until) {
                hold.term += 1;
            }
            hold.until = deadline;
        });
        live(&deadline)
    }

    fn drop_hold(&self) {
        self.tx.send_modify(|hold| hold.until = None);
    }
}

/// A lease a test grants and takes away by hand, through the same fence the
/// renewal loop drives: no database, no renewal timing. Test-only, so that
/// users of a [`LeaseGuard`] (e.g. [`crate::runtime::leader_ticks`]) can be tested on
/// a paused clock.
#[cfg(test)]
pub(crate) struct ManualLease(Fence);

#[cfg(test)]
impl ManualLease {
    /// Not held until [`ManualLease::grant`].
    pub(crate) fn new() -> (ManualLease, LeaseGuard) {
        // Long enough that the local deadline never ends a test's hold.
        let (fence, guard) = Fence::new(Duration::from_secs(24 * 3600));
        (ManualLease(fence), guard)
    }

    /// Held from now, as after a successful acquire.
    pub(crate) fn grant(&self) {
        self.0.record(Instant::now(), true);
    }

    /// Lost now, as after a refused renewal.
    pub(crate) fn revoke(&self) {
        self.0.drop_hold();
    }
}

impl Lease {
    /// `holder` identifies this process (e.g. `mqtt-bridge@host:pid:random`).
    pub fn new(pool: PgPool, name: &str, holder: &str, ttl: Duration) -> Self {
        Lease {
            pool,
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
        }
    }

    /// A holder id unique to this process and call.
    pub fn holder_id(service: &str) -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!(
            "{service}@{host}:{}:{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// Tries to take or renew the lease; true when this process holds it now.
    pub async fn try_acquire(&self) -> Result<bool, sqlx::Error> {
        leases::take(&self.pool, &self.name, &self.holder, self.ttl).await
    }

    /// Gives the lease up if this process holds it.
    pub async fn release(&self) -> Result<(), sqlx::Error> {
        leases::release(&self.pool, &self.name, &self.holder).await
    }

    /// Competes for the lease in the background until `shutdown`, then
    /// releases it. The guard tells when this process may act.
    pub fn spawn(self, shutdown: CancellationToken) -> LeaseGuard {
        let (fence, guard) = Fence::new(self.ttl);
        tokio::spawn(async move {
            compete(
                &fence,
                &self.name,
                &self.holder,
                || self.try_acquire(),
                &shutdown,
            )
            .await;
            if let Err(e) = self.release().await {
                warn!(lease = %self.name, error = %e, "Could not release the lease; it expires by itself.");
            }
        });
        guard
    }
}

/// The renewal loop: `attempt` is one acquire-or-renew. Returns on shutdown,
/// having stopped acting.
async fn compete<F, Fut>(
    fence: &Fence,
    name: &str,
    holder: &str,
    mut attempt: F,
    shutdown: &CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, sqlx::Error>>,
{
    let every = fence.ttl / 3;
    let gauge = metrics::gauge!(m::LEASE_HELD, "lease" => name.to_owned());
    let mut was = false;
    let mut report = |held: bool, why: &str| {
        if held != was {
            if held {
                info!(lease = %name, holder = %holder, "Lease acquired; this instance is active.");
            } else {
                info!(lease = %name, holder = %holder, why, "Lease lost; this instance is standby.");
            }
            was = held;
        }
        gauge.set(if held { 1.0 } else { 0.0 });
    };
    'run: loop {
        let sent_at = Instant::now();
        let call = tokio::time::timeout(fence.ttl, attempt());
        tokio::pin!(call);
        let outcome = loop {
            let deadline = fence.tx.borrow().until;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'run,
                outcome = &mut call => break outcome,
                // The renewal hangs past the local deadline: stand down now
                // (is_held already says so by the clock) and keep waiting.
                _ = tokio::time::sleep_until(deadline.unwrap_or(sent_at)), if deadline.is_some() => {
                    warn!(lease = %name, "Lease renewal has not answered by the local deadline; standing down.");
                    fence.drop_hold();
                    report(false, "renewal hangs");
                }
            }
        };
        let held = match outcome {
            Ok(Ok(held)) => held,
            Ok(Err(e)) => {
                warn!(lease = %name, error = %e, "Lease renewal failed; standing down.");
                false
            }
            Err(_) => {
                warn!(lease = %name, "Lease renewal did not answer within the TTL; standing down.");
                false
            }
        };
        let now_held = fence.record(sent_at, held);
        report(
            now_held,
            if held {
                "renewal answered too late"
            } else {
                "not renewed"
            },
        );
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    fence.drop_hold();
    report(false, "shutdown");
}

#[cfg(test)]
mod tests;
