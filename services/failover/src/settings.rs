//! failover's own settings, read from the environment next to the shared
//! [`common::settings::Settings`] and validated before anything starts.

use common::placement::balance::Strategy;
use common::settings::{FromEnv, SettingsError, de_from_str, require, within};
use serde::Deserialize;

use crate::detector::Thresholds;

/// How brokers are watched and where nodes go.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FailoverSettings {
    /// `ASSIGNMENT_STRATEGY`: the strategy nodes of a dead broker are placed
    /// by (the same variable broker-registry reads); default `priority`.
    #[serde(deserialize_with = "de_from_str")]
    pub assignment_strategy: Strategy,
    /// `FAILOVER_PROBE_INTERVAL_MS`: round-trip probe period per broker;
    /// default 1000.
    pub failover_probe_interval_ms: u64,
    /// `FAILOVER_SUSPECT_PROBE_MS`: probe period of a suspect broker; default 400.
    pub failover_suspect_probe_ms: u64,
    /// `FAILOVER_CONFIRM_PROBES`: failed probes in a row that confirm a broker
    /// dead; default 3.
    pub failover_confirm_probes: u32,
    /// `FAILOVER_RECOVER_PROBES`: good probes in a row before a dead broker is
    /// GOOD again; default 5.
    pub failover_recover_probes: u32,
    /// `FAILOVER_SILENCE_SEC`: no uplink this long from a broker with nodes
    /// makes it suspect; default 10.
    pub failover_silence_sec: u64,
    /// `FAILOVER_UNANSWERED_SEC`: commands SENT on a broker this long
    /// without an answer make it suspect; default 5.
    pub failover_unanswered_sec: u64,
    /// `FAILOVER_EVENT_DEADLINE_SEC`: a failover event not settled (moves
    /// unconfirmed, or nodes stranded) this long after it started is closed
    /// with its counts; default 120.
    pub failover_event_deadline_sec: u64,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            assignment_strategy: Strategy::Priority,
            failover_probe_interval_ms: 1_000,
            failover_suspect_probe_ms: 400,
            failover_confirm_probes: 3,
            failover_recover_probes: 5,
            failover_silence_sec: 10,
            failover_unanswered_sec: 5,
            failover_event_deadline_sec: 120,
        }
    }
}

impl FromEnv for FailoverSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        within(
            "FAILOVER_PROBE_INTERVAL_MS",
            self.failover_probe_interval_ms,
            100,
            60_000,
        )?;
        within(
            "FAILOVER_SUSPECT_PROBE_MS",
            self.failover_suspect_probe_ms,
            50,
            60_000,
        )?;
        require(
            self.failover_confirm_probes > 0 && self.failover_recover_probes > 0,
            "FAILOVER_CONFIRM_PROBES and FAILOVER_RECOVER_PROBES must be at least 1",
        )?;
        require(
            self.failover_silence_sec > 0 && self.failover_unanswered_sec > 0,
            "FAILOVER_SILENCE_SEC and FAILOVER_UNANSWERED_SEC must be at least 1",
        )?;
        require(
            self.failover_event_deadline_sec > 0,
            "FAILOVER_EVENT_DEADLINE_SEC must be at least 1",
        )
    }
}

impl FailoverSettings {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            confirm_probes: self.failover_confirm_probes,
            recover_probes: self.failover_recover_probes,
        }
    }
}

common::durations!(FailoverSettings {
    probe_interval: from_millis(failover_probe_interval_ms),
    suspect_probe: from_millis(failover_suspect_probe_ms),
    silence: from_secs(failover_silence_sec),
    event_deadline: from_secs(failover_event_deadline_sec),
    unanswered: from_secs(failover_unanswered_sec),
});

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use testkit::env_vars as vars;

    #[test]
    fn defaults_and_errors() {
        let s = FailoverSettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.assignment_strategy, Strategy::Priority);
        assert_eq!(s.thresholds().confirm_probes, 3);
        assert_eq!(s.probe_interval(), Duration::from_secs(1));
        testkit::assert_each_refused::<FailoverSettings>(&[
            ("ASSIGNMENT_STRATEGY", "x"),
            ("FAILOVER_PROBE_INTERVAL_MS", "1"),
            ("FAILOVER_CONFIRM_PROBES", "0"),
            ("FAILOVER_SILENCE_SEC", "0"),
        ]);
    }
}
