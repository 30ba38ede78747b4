//! failover's own settings, read from the environment next to the shared
//! [`common::settings::Settings`] and validated before anything starts.

use std::collections::HashMap;
use std::time::Duration;

use common::placement::balance::Strategy;
use common::settings::{SettingsError, de_from_str, from_env};
use serde::Deserialize;

use crate::detector::Thresholds;

const fn default_probe_interval_ms() -> u64 {
    1_000
}
const fn default_suspect_probe_ms() -> u64 {
    400
}
const fn default_confirm_probes() -> u32 {
    3
}
const fn default_recover_probes() -> u32 {
    5
}
const fn default_silence_sec() -> u64 {
    10
}
const fn default_unanswered_sec() -> u64 {
    5
}
const fn default_event_deadline_sec() -> u64 {
    120
}
fn default_strategy() -> String {
    "priority".into()
}

/// How brokers are watched and where nodes go.
#[derive(Debug, Clone, Deserialize)]
pub struct FailoverSettings {
    /// `ASSIGNMENT_STRATEGY`: the strategy nodes of a dead broker are placed
    /// by (the same variable broker-registry reads).
    #[serde(default = "default_strategy")]
    pub assignment_strategy: String,
    /// `FAILOVER_PROBE_INTERVAL_MS`: round-trip probe period per broker.
    #[serde(
        default = "default_probe_interval_ms",
        deserialize_with = "de_from_str"
    )]
    pub failover_probe_interval_ms: u64,
    /// `FAILOVER_SUSPECT_PROBE_MS`: probe period of a suspect broker.
    #[serde(default = "default_suspect_probe_ms", deserialize_with = "de_from_str")]
    pub failover_suspect_probe_ms: u64,
    /// `FAILOVER_CONFIRM_PROBES`: failed probes in a row that confirm a broker dead.
    #[serde(default = "default_confirm_probes", deserialize_with = "de_from_str")]
    pub failover_confirm_probes: u32,
    /// `FAILOVER_RECOVER_PROBES`: good probes in a row before a dead broker is GOOD again.
    #[serde(default = "default_recover_probes", deserialize_with = "de_from_str")]
    pub failover_recover_probes: u32,
    /// `FAILOVER_SILENCE_SEC`: no uplink this long from a broker with nodes
    /// makes it suspect.
    #[serde(default = "default_silence_sec", deserialize_with = "de_from_str")]
    pub failover_silence_sec: u64,
    /// `FAILOVER_UNANSWERED_SEC`: commands SENT on a broker this long
    /// without an answer make it suspect.
    #[serde(default = "default_unanswered_sec", deserialize_with = "de_from_str")]
    pub failover_unanswered_sec: u64,
    /// `FAILOVER_EVENT_DEADLINE_SEC`: a failover event not settled (moves
    /// unconfirmed, or nodes stranded) this long after it started is closed
    /// with its counts.
    #[serde(
        default = "default_event_deadline_sec",
        deserialize_with = "de_from_str"
    )]
    pub failover_event_deadline_sec: u64,
}

impl FailoverSettings {
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_vars(None)
    }

    pub fn from_vars(vars: Option<HashMap<String, String>>) -> Result<Self, SettingsError> {
        let s: FailoverSettings = from_env(vars)?;
        s.strategy()?;
        let fail = |m: &str| Err(SettingsError(m.to_owned()));
        if !(100..=60_000).contains(&s.failover_probe_interval_ms) {
            return fail("FAILOVER_PROBE_INTERVAL_MS must be between 100 and 60000");
        }
        if !(50..=60_000).contains(&s.failover_suspect_probe_ms) {
            return fail("FAILOVER_SUSPECT_PROBE_MS must be between 50 and 60000");
        }
        if s.failover_confirm_probes == 0 || s.failover_recover_probes == 0 {
            return fail("FAILOVER_CONFIRM_PROBES and FAILOVER_RECOVER_PROBES must be at least 1");
        }
        if s.failover_silence_sec == 0 || s.failover_unanswered_sec == 0 {
            return fail("FAILOVER_SILENCE_SEC and FAILOVER_UNANSWERED_SEC must be at least 1");
        }
        if s.failover_event_deadline_sec == 0 {
            return fail("FAILOVER_EVENT_DEADLINE_SEC must be at least 1");
        }
        Ok(s)
    }

    pub fn strategy(&self) -> Result<Strategy, SettingsError> {
        self.assignment_strategy
            .parse()
            .map_err(|e| SettingsError(format!("ASSIGNMENT_STRATEGY: {e}")))
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            confirm_probes: self.failover_confirm_probes,
            recover_probes: self.failover_recover_probes,
        }
    }

    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.failover_probe_interval_ms)
    }

    pub fn suspect_probe(&self) -> Duration {
        Duration::from_millis(self.failover_suspect_probe_ms)
    }

    pub fn silence(&self) -> Duration {
        Duration::from_secs(self.failover_silence_sec)
    }

    pub fn event_deadline(&self) -> Duration {
        Duration::from_secs(self.failover_event_deadline_sec)
    }

    pub fn unanswered(&self) -> Duration {
        Duration::from_secs(self.failover_unanswered_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::env_vars as vars;

    #[test]
    fn defaults_and_errors() {
        let s = FailoverSettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.strategy().unwrap(), Strategy::Priority);
        assert_eq!(s.thresholds().confirm_probes, 3);
        assert_eq!(s.probe_interval(), Duration::from_secs(1));
        for (k, v) in [
            ("ASSIGNMENT_STRATEGY", "x"),
            ("FAILOVER_PROBE_INTERVAL_MS", "1"),
            ("FAILOVER_CONFIRM_PROBES", "0"),
            ("FAILOVER_SILENCE_SEC", "0"),
        ] {
            let err = FailoverSettings::from_vars(vars(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.to_lowercase().contains(&k.to_lowercase()),
                "{k}={v}: {err}"
            );
        }
    }
}
