//! The rhythm of a singleton job under a [`crate::runtime::lease`]: act every
//! period while this process holds the lease, and at once when it gains it
//! (at start, or when the holder died), so a standby does not wait a whole
//! period before taking the work over.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::runtime::lease::LeaseGuard;

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
    /// The lease term the last turn belonged to.
    led: Option<u64>,
}

impl LeaderTicks {
    pub fn new(lease: LeaseGuard, every: Duration) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        LeaderTicks {
            lease,
            tick,
            led: None,
        }
    }

    /// Waits for the next turn; `None` once `stop` is cancelled.
    pub async fn next(&mut self, stop: &CancellationToken) -> Option<Turn> {
        loop {
            if !self.lease.is_held() {
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = self.lease.wait_held() => {}
                }
            }
            // A term this process has not acted in yet: lost and held again
            // since the last turn, even between two ticks.
            let term = self.lease.term();
            if self.led != Some(term) {
                self.led = Some(term);
                self.tick.reset();
                return Some(Turn::Gained);
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = self.tick.tick() => {}
            }
            if self.lease.is_held() && self.lease.term() == term {
                return Some(Turn::Held);
            }
        }
    }

    /// Whether this process holds the lease right now.
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }
}

#[cfg(test)]
mod tests {
    //! On a paused clock: each turn is checked at its exact instant, and
    //! "no turn" is a wait the clock skips through, not a sleep.

    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;
    use crate::runtime::lease::ManualLease;

    const EVERY: Duration = Duration::from_millis(100);
    /// Longer than any wait a test expects; the paused clock jumps it.
    const NEVER: Duration = Duration::from_secs(3600);

    /// The next turn and its instant; `None` for a stop, and a panic when no
    /// turn comes at all.
    async fn next(ticks: &mut LeaderTicks, stop: &CancellationToken) -> (Option<Turn>, Instant) {
        let turn = tokio::time::timeout(NEVER, ticks.next(stop))
            .await
            .expect("a turn or the stop");
        (turn, Instant::now())
    }

    /// Runs `f` at `at` on the paused clock, while the test awaits turns.
    fn at(at: Instant, f: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            f();
        });
    }

    /// The lease lost at `lost` and held again at `regained`.
    fn lose_and_regain(lease: &Arc<ManualLease>, lost: Instant, regained: Instant) {
        let l = lease.clone();
        at(lost, move || l.revoke());
        let l = lease.clone();
        at(regained, move || l.grant());
    }

    fn held_ticks() -> (Arc<ManualLease>, LeaderTicks) {
        let (lease, guard) = ManualLease::new();
        lease.grant();
        (Arc::new(lease), LeaderTicks::new(guard, EVERY))
    }

    #[tokio::test(start_paused = true)]
    async fn gained_at_once_then_held_every_period() {
        let t0 = Instant::now();
        let (_lease, mut ticks) = held_ticks();
        let stop = CancellationToken::new();
        assert_eq!(next(&mut ticks, &stop).await, (Some(Turn::Gained), t0));
        for k in 1..=10 {
            assert_eq!(
                next(&mut ticks, &stop).await,
                (Some(Turn::Held), t0 + EVERY * k)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_turn_while_the_lease_is_not_held() {
        let (lease, guard) = ManualLease::new();
        let mut ticks = LeaderTicks::new(guard, EVERY);
        let stop = CancellationToken::new();
        assert!(
            tokio::time::timeout(EVERY * 50, ticks.next(&stop))
                .await
                .is_err(),
            "a turn without the lease"
        );
        // Gained the instant it is granted, however long it was waited for.
        let t1 = Instant::now();
        at(t1 + EVERY * 7 / 2, move || lease.grant());
        assert_eq!(
            next(&mut ticks, &stop).await,
            (Some(Turn::Gained), t1 + EVERY * 7 / 2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lost_then_regained_turns_gained_again_and_restarts_the_period() {
        let t0 = Instant::now();
        let (lease, mut ticks) = held_ticks();
        let stop = CancellationToken::new();
        assert_eq!(next(&mut ticks, &stop).await, (Some(Turn::Gained), t0));
        assert_eq!(
            next(&mut ticks, &stop).await,
            (Some(Turn::Held), t0 + EVERY)
        );
        // Lost half-way to the next tick, regained 5 periods later: the tick
        // in between finds it not held and yields nothing.
        let (lost, regained) = (t0 + EVERY * 3 / 2, t0 + EVERY * 13 / 2);
        lose_and_regain(&lease, lost, regained);
        assert_eq!(
            next(&mut ticks, &stop).await,
            (Some(Turn::Gained), regained)
        );
        assert!(ticks.is_held());
        // The period counts from the gain, not from the old ticks.
        assert_eq!(
            next(&mut ticks, &stop).await,
            (Some(Turn::Held), regained + EVERY)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lost_and_regained_between_two_ticks_is_a_new_term() {
        // A standby may have acted in the gap, so the next turn is Gained
        // (state kept from the old term is stale), not Held.
        let t0 = Instant::now();
        let (lease, mut ticks) = held_ticks();
        let stop = CancellationToken::new();
        assert_eq!(next(&mut ticks, &stop).await, (Some(Turn::Gained), t0));
        lose_and_regain(&lease, t0 + EVERY / 4, t0 + EVERY / 2);
        assert_eq!(
            next(&mut ticks, &stop).await,
            (Some(Turn::Gained), t0 + EVERY)
        );
        assert_eq!(
            next(&mut ticks, &stop).await,
            (Some(Turn::Held), t0 + EVERY * 2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn none_on_stop_whether_held_or_not() {
        let t0 = Instant::now();
        let (lease, mut ticks) = held_ticks();
        let stop = CancellationToken::new();
        assert_eq!(next(&mut ticks, &stop).await, (Some(Turn::Gained), t0));
        // Held, between two ticks.
        let s = stop.clone();
        at(t0 + EVERY / 2, move || s.cancel());
        assert_eq!(next(&mut ticks, &stop).await, (None, t0 + EVERY / 2));

        // Not held, waiting for the lease.
        lease.revoke();
        let stop = CancellationToken::new();
        let t1 = Instant::now();
        let s = stop.clone();
        at(t1 + EVERY * 3, move || s.cancel());
        assert_eq!(next(&mut ticks, &stop).await, (None, t1 + EVERY * 3));
    }
}
