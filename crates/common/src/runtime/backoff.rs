//! The one retry delay of the workspace: exponential from a base to a cap,
//! optionally jittered so that many clients of a restarted broker do not
//! come back in lockstep. Every retry loop (MQTT reconnects, history-logger's
//! writer and its Redis appends) takes its delays from here, and waits them
//! out with [`Backoff::pause`], which a stop cuts short.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Delays `base`, 2×`base`, 4×`base`… capped at `max`; with jitter, each
/// delay is within about ±1/8 of its step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    jitter: bool,
    attempt: u32,
}

impl Backoff {
    /// Exact delays: `base` doubling to `max`.
    pub const fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base_ms: base.as_millis() as u64,
            max_ms: max.as_millis() as u64,
            jitter: false,
            attempt: 0,
        }
    }

    /// The same steps, each moved by up to ±1/8 at random.
    pub const fn jittered(mut self) -> Backoff {
        self.jitter = true;
        self
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // The shift is bounded: a long outage never overflows it.
        let step = self
            .base_ms
            .saturating_mul(1 << self.attempt.min(20))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        if !self.jitter {
            return Duration::from_millis(step);
        }
        let jitter = rand::random_range(0..=step / 4);
        Duration::from_millis(step - step / 8 + jitter)
    }

    /// Waits out the next delay, unless `stop` comes first: true when the
    /// delay passed (retry), false when the caller should stop.
    pub async fn pause(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// After a success: the next delay is `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// history-logger's writer: 100 ms doubling, capped at 5 s, for good.
    #[test]
    fn exact_delays_double_from_the_base_and_stay_at_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let ms: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
        for _ in 0..1000 {
            assert_eq!(b.next_delay(), Duration::from_secs(5));
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    /// MQTT reconnects: each delay, attempt by attempt, 100 ms doubling to
    /// the 2 s cap, within about ±1/8 of its step, and back to 100 ms after
    /// a reset. The steps' windows do not overlap, so a delay out of order
    /// fails; many rounds cover the jitter's range.
    #[test]
    fn jittered_delays_stay_within_an_eighth_of_their_step() {
        const STEPS_MS: [u64; 8] = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        let within = |d: Duration, step: u64| {
            let ms = d.as_millis() as u64;
            (step - step / 8..=step - step / 8 + step / 4).contains(&ms)
        };
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).jittered();
        for round in 0..200 {
            for (attempt, step) in STEPS_MS.iter().enumerate() {
                let d = b.next_delay();
                assert!(
                    within(d, *step),
                    "round {round}, attempt {attempt}: {d:?} for a {step} ms step"
                );
            }
            b.reset();
        }
        for attempt in 0..100 {
            let d = b.next_delay();
            assert!(attempt < 5 || within(d, 2000), "attempt {attempt}: {d:?}");
        }
    }

    /// A retry loop's wait: the delay passes (virtual time), or the stop
    /// ends it at once.
    #[tokio::test(start_paused = true)]
    async fn pause_waits_the_delay_unless_stopped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let stop = CancellationToken::new();
        let started = tokio::time::Instant::now();
        assert!(b.pause(&stop).await);
        assert!(b.pause(&stop).await);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        stop.cancel();
        assert!(!b.pause(&stop).await);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
