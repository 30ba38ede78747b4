//! The queue's fill levels and what each means for the brokers:
//! below 90 % of the bound all is well; from 90 % the service says so (metric,
//! rate-limited warning) and keeps accepting; at the bound it stops
//! acknowledging to the brokers, which then hold the messages.

use std::time::Duration;

use tokio::time::Instant;

/// How full the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    Normal,
    /// At or above 90 % of the bound: still accepting.
    High,
    /// At the bound: not accepting (nothing acknowledged to the brokers).
    Full,
}

impl Pressure {
    /// The level for `len` entries in a queue bounded at `bound`.
    pub fn of(len: u64, bound: u64) -> Pressure {
        if len >= bound {
            Pressure::Full
        } else if u128::from(len) * 10 >= u128::from(bound) * 9 {
            Pressure::High
        } else {
            Pressure::Normal
        }
    }

    /// The value of the `uplink_queue_pressure` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            Pressure::Normal => 0.0,
            Pressure::High => 1.0,
            Pressure::Full => 2.0,
        }
    }
}

/// Lets something happen at most once per period (log lines under load).
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    pub fn new(every: Duration) -> Self {
        RateLimit { every, last: None }
    }

    /// Whether it may happen now; if so, the period starts again.
    pub fn ready(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(Pressure::of(0, 1000), Pressure::Normal);
        assert_eq!(Pressure::of(899, 1000), Pressure::Normal);
        assert_eq!(Pressure::of(900, 1000), Pressure::High);
        assert_eq!(Pressure::of(999, 1000), Pressure::High);
        assert_eq!(Pressure::of(1000, 1000), Pressure::Full);
        assert_eq!(Pressure::of(5000, 1000), Pressure::Full);
        assert_eq!(Pressure::of(u64::MAX - 1, u64::MAX), Pressure::High);
        assert!(Pressure::Full > Pressure::High);
        assert_eq!(Pressure::High.gauge(), 1.0);
    }

    #[test]
    fn rate_limit() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_secs(10));
        assert!(r.ready(t0));
        assert!(!r.ready(t0));
        assert!(!r.ready(t0 + Duration::from_secs(9)));
        assert!(r.ready(t0 + Duration::from_secs(10)));
        assert!(!r.ready(t0 + Duration::from_secs(11)));
    }
}
