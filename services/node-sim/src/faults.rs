//! Misbehaviour on demand: responses dropped, duplicated or late, so the
//! bridge's timeout sweeper and duplicate handling can be tested. Values are
//! read at every command and can be changed at runtime (`PUT /sim/faults`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::settings::SimSettings;

/// The fault settings as JSON (`GET /sim/faults`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaultConfig {
    /// Probability that a command gets no response at all.
    pub drop_responses: f64,
    /// Probability that a response is sent twice.
    pub duplicate_responses: f64,
    /// Delay before every response.
    pub response_delay_ms: u64,
}

/// The current faults, shared by every node; lock-free to read.
#[derive(Debug)]
pub struct Faults {
    // f64 values stored as their bits, so reading needs no lock.
    drop_responses: AtomicU64,
    duplicate_responses: AtomicU64,
    response_delay_ms: AtomicU64,
}

impl Faults {
    /// Faults as configured at start. Values are checked by the caller.
    pub fn new(config: FaultConfig) -> Self {
        let f = Faults {
            drop_responses: AtomicU64::new(0),
            duplicate_responses: AtomicU64::new(0),
            response_delay_ms: AtomicU64::new(0),
        };
        f.set(config);
        f
    }

    pub fn from_settings(sim: &SimSettings) -> Self {
        Self::new(FaultConfig {
            drop_responses: sim.drop_responses,
            duplicate_responses: sim.duplicate_responses,
            response_delay_ms: sim.response_delay_ms,
        })
    }

    pub fn get(&self) -> FaultConfig {
        FaultConfig {
            drop_responses: f64::from_bits(self.drop_responses.load(Ordering::Relaxed)),
            duplicate_responses: f64::from_bits(self.duplicate_responses.load(Ordering::Relaxed)),
            response_delay_ms: self.response_delay_ms.load(Ordering::Relaxed),
        }
    }

    pub fn set(&self, c: FaultConfig) {
        self.drop_responses
            .store(c.drop_responses.to_bits(), Ordering::Relaxed);
        self.duplicate_responses
            .store(c.duplicate_responses.to_bits(), Ordering::Relaxed);
        self.response_delay_ms
            .store(c.response_delay_ms, Ordering::Relaxed);
    }

    /// Whether this command's responses are all dropped.
    pub fn drop_command(&self) -> bool {
        chance(self.get().drop_responses)
    }

    /// How many times to send one response: 1, or 2 when duplicated.
    pub fn copies(&self) -> usize {
        if chance(self.get().duplicate_responses) {
            2
        } else {
            1
        }
    }

    /// How long to wait before sending a response.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.response_delay_ms.load(Ordering::Relaxed))
    }
}

/// True with probability `p`: never for 0, always for 1.
fn chance(p: f64) -> bool {
    // `random` is in [0, 1): `< 0.0` never holds, `< 1.0` always does.
    p > 0.0 && rand::random::<f64>() < p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(drop: f64, dup: f64) -> Faults {
        Faults::new(FaultConfig {
            drop_responses: drop,
            duplicate_responses: dup,
            response_delay_ms: 0,
        })
    }

    #[test]
    fn zero_and_one_are_certain() {
        let never = faults(0.0, 0.0);
        let always = faults(1.0, 1.0);
        for _ in 0..10_000 {
            assert!(!never.drop_command());
            assert_eq!(never.copies(), 1);
            assert!(always.drop_command());
            assert_eq!(always.copies(), 2);
        }
    }

    #[test]
    fn a_half_is_roughly_half() {
        let half = faults(0.5, 0.0);
        let dropped = (0..10_000).filter(|_| half.drop_command()).count();
        // Binomial(10000, 0.5) has σ = 50; 10σ is never reached by chance.
        assert!((4_500..=5_500).contains(&dropped), "{dropped}");
    }

    #[test]
    fn changes_are_seen_at_once() {
        let f = faults(0.0, 0.0);
        let c = FaultConfig {
            drop_responses: 0.25,
            duplicate_responses: 0.75,
            response_delay_ms: 1500,
        };
        f.set(c);
        assert_eq!(f.get(), c);
        assert_eq!(f.delay(), Duration::from_millis(1500));
    }
}
