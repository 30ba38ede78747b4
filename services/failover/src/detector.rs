//! Deciding that a broker is dead — once, not a flap — and that it is back.
//!
//! Any sign of trouble makes a broker *suspect*: a failed probe, our
//! connection to it dropping, its nodes falling silent, commands on it going
//! unanswered. A suspect broker is probed every `FAILOVER_SUSPECT_PROBE_MS`;
//! `FAILOVER_CONFIRM_PROBES` failed probes in a row confirm it dead (one
//! decision: mark it OFFLINE and move its nodes), while one good probe clears
//! the suspicion (a blip moves nothing). A dead broker is declared GOOD
//! again only after `FAILOVER_RECOVER_PROBES` good probes in a row; its nodes
//! come back only through a normal, rate-limited rebalance.

proto::text_enum! {
    /// What was seen about a broker.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Signal {
        ProbeOk => "probe_ok",
        ProbeFailed => "probe_failed",
        ConnectionDropped => "connection_dropped",
        NodesSilent => "nodes_silent",
        CommandsUnanswered => "commands_unanswered",
    }
}

/// Where a broker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Healthy,
    /// `first` is the signal that raised the suspicion.
    Suspect {
        failures: u32,
        first: Signal,
    },
    Dead {
        successes: u32,
    },
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Mark OFFLINE and move its nodes; `cause` is the first signal seen.
    Failover { cause: Signal, failures: u32 },
    /// Mark GOOD again.
    Recovered,
}

/// The thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub confirm_probes: u32,
    pub recover_probes: u32,
}

/// One broker's detector.
#[derive(Debug, Clone)]
pub struct Detector {
    pub phase: Phase,
    limits: Thresholds,
}

impl Detector {
    pub fn new(limits: Thresholds, dead: bool) -> Self {
        Detector {
            phase: if dead {
                Phase::Dead { successes: 0 }
            } else {
                Phase::Healthy
            },
            limits,
        }
    }

    /// Whether the broker should be probed at the fast pace.
    pub fn suspect(&self) -> bool {
        matches!(self.phase, Phase::Suspect { .. })
    }

    pub fn is_dead(&self) -> bool {
        matches!(self.phase, Phase::Dead { .. })
    }

    /// Takes a signal; says when to act.
    pub fn on(&mut self, signal: Signal) -> Option<Decision> {
        let failed = signal != Signal::ProbeOk;
        match (&mut self.phase, failed) {
            (Phase::Healthy, false) => None,
            (Phase::Healthy, true) => {
                let failures = u32::from(signal == Signal::ProbeFailed);
                self.phase = Phase::Suspect {
                    failures,
                    first: signal,
                };
                self.confirm()
            }
            (Phase::Suspect { .. }, false) => {
                self.phase = Phase::Healthy;
                None
            }
            (Phase::Suspect { failures, .. }, true) => {
                if signal == Signal::ProbeFailed {
                    *failures += 1;
                }
                self.confirm()
            }
            (Phase::Dead { successes }, false) => {
                *successes += 1;
                if *successes >= self.limits.recover_probes {
                    self.phase = Phase::Healthy;
                    return Some(Decision::Recovered);
                }
                None
            }
            (Phase::Dead { successes }, true) => {
                if signal == Signal::ProbeFailed {
                    *successes = 0;
                }
                None
            }
        }
    }

    fn confirm(&mut self) -> Option<Decision> {
        let Phase::Suspect { failures, first } = self.phase else {
            return None;
        };
        (failures >= self.limits.confirm_probes).then(|| {
            self.phase = Phase::Dead { successes: 0 };
            Decision::Failover {
                cause: first,
                failures,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        confirm_probes: 3,
        recover_probes: 5,
    };

    #[test]
    fn a_dead_broker_is_confirmed_by_probes_once() {
        let mut d = Detector::new(LIMITS, false);
        assert_eq!(d.on(Signal::ConnectionDropped), None);
        assert!(d.suspect());
        // Other signals alone never decide: only failed probes confirm.
        assert_eq!(d.on(Signal::NodesSilent), None);
        assert_eq!(d.on(Signal::ProbeFailed), None);
        assert_eq!(d.on(Signal::ProbeFailed), None);
        assert_eq!(
            d.on(Signal::ProbeFailed),
            Some(Decision::Failover {
                cause: Signal::ConnectionDropped,
                failures: 3
            })
        );
        assert!(d.is_dead());
        // More failures change nothing: one decision.
        for _ in 0..10 {
            assert_eq!(d.on(Signal::ProbeFailed), None);
        }
    }

    #[test]
    fn a_blip_clears_the_suspicion() {
        let mut d = Detector::new(LIMITS, false);
        d.on(Signal::ProbeFailed);
        d.on(Signal::ProbeFailed);
        assert_eq!(d.on(Signal::ProbeOk), None);
        assert_eq!(d.phase, Phase::Healthy);
        d.on(Signal::ProbeFailed);
        d.on(Signal::ProbeFailed);
        assert!(!d.is_dead(), "the count started again");
    }

    #[test]
    fn recovery_needs_good_probes_in_a_row() {
        let mut d = Detector::new(LIMITS, true);
        for _ in 0..4 {
            assert_eq!(d.on(Signal::ProbeOk), None);
        }
        assert_eq!(d.on(Signal::ProbeFailed), None);
        for _ in 0..4 {
            assert_eq!(d.on(Signal::ProbeOk), None);
        }
        // Silence from nodes that are elsewhere now does not reset it.
        assert_eq!(d.on(Signal::NodesSilent), None);
        assert_eq!(d.on(Signal::ProbeOk), Some(Decision::Recovered));
        assert_eq!(d.phase, Phase::Healthy);
    }
}
