//! A keyed throttle: at most one "go" per key per interval. It limits the
//! database writes of chatty unbound nodes and the log lines about bad
//! payloads. Bounded: past `MAX_KEYS` keys it forgets the stale ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys remembered at most; an attacker inventing hardware ids cannot grow
/// the map past this.
const MAX_KEYS: usize = 10_000;

/// One throttle; not shared between tasks (the inbox loop owns it).
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: HashMap<String, Instant>,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: HashMap::new(),
        }
    }

    /// True when `key` may go now (and records that it went).
    pub fn allow(&mut self, key: &str, now: Instant) -> bool {
        if let Some(last) = self.last.get(key)
            && now.saturating_duration_since(*last) < self.every
        {
            return false;
        }
        if self.last.len() >= MAX_KEYS {
            let every = self.every;
            self.last
                .retain(|_, at| now.saturating_duration_since(*at) < every);
            if self.last.len() >= MAX_KEYS {
                self.last.clear();
            }
        }
        self.last.insert(key.to_owned(), now);
        true
    }

    /// Lets `key` go at its next call (after a write that failed, say).
    pub fn forget(&mut self, key: &str) {
        self.last.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_key_per_interval() {
        let mut t = Throttle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(t.allow("a", t0));
        assert!(!t.allow("a", t0 + Duration::from_millis(500)));
        assert!(t.allow("b", t0 + Duration::from_millis(500)));
        assert!(t.allow("a", t0 + Duration::from_millis(1000)));
        t.forget("a");
        assert!(t.allow("a", t0 + Duration::from_millis(1001)));
    }

    #[test]
    fn zero_interval_always_allows() {
        let mut t = Throttle::new(Duration::ZERO);
        let t0 = Instant::now();
        assert!(t.allow("a", t0));
        assert!(t.allow("a", t0));
    }

    #[test]
    fn stays_bounded() {
        let mut t = Throttle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            t.allow(&i.to_string(), t0);
        }
        assert!(t.last.len() <= MAX_KEYS);
    }
}
