//! automation-engine's own settings, read from the environment next to the
//! shared [`common::settings::Settings`] and validated before anything starts.

use common::settings::{FromEnv, SettingsError, require, within};
use serde::Deserialize;

/// How often the engine decides and how hard it works at it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AutomationSettings {
    /// `AUTOMATION_INTERVAL_SEC`: time between the starts of two cycles;
    /// default 15.
    pub automation_interval_sec: u64,
    /// `TARGET_CYCLE_TIME_SEC`: the time a cycle should take; the number of
    /// zones processed at once adapts to it (5..50). Default 1 s: 1,000 zones
    /// decided well within one cycle interval.
    pub target_cycle_time_sec: f64,
    /// `AUTOMATION_EVENT_REPEAT_SEC`: a skip or error with the same reason
    /// as the zone's previous one is written as a zone event again only
    /// after this; 0 writes every decision. Default 300.
    pub automation_event_repeat_sec: u64,
}

impl Default for AutomationSettings {
    fn default() -> Self {
        AutomationSettings {
            automation_interval_sec: 15,
            target_cycle_time_sec: 1.0,
            automation_event_repeat_sec: 300,
        }
    }
}

impl FromEnv for AutomationSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        within(
            "AUTOMATION_INTERVAL_SEC",
            self.automation_interval_sec,
            1,
            3_600,
        )?;
        within(
            "TARGET_CYCLE_TIME_SEC",
            self.target_cycle_time_sec,
            0.01,
            3_600.0,
        )?;
        require(
            self.automation_event_repeat_sec <= 86_400,
            "AUTOMATION_EVENT_REPEAT_SEC must be at most 86400",
        )
    }
}

common::durations!(AutomationSettings {
    interval: from_secs(automation_interval_sec),
    target_cycle_time: from_secs_f64(target_cycle_time_sec),
    event_repeat: from_secs(automation_event_repeat_sec),
});

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use testkit::env_vars;

    use super::*;

    #[test]
    fn defaults() {
        let s = AutomationSettings::from_vars(env_vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.interval(), Duration::from_secs(15));
        assert_eq!(s.target_cycle_time(), Duration::from_secs(1));
        assert_eq!(s.event_repeat(), Duration::from_secs(300));
    }

    #[test]
    fn overrides_and_refusals() {
        let s = AutomationSettings::from_vars(env_vars(&[
            ("AUTOMATION_INTERVAL_SEC", "1"),
            ("TARGET_CYCLE_TIME_SEC", "0.5"),
            ("AUTOMATION_EVENT_REPEAT_SEC", "0"),
        ]))
        .unwrap();
        assert_eq!(s.interval(), Duration::from_secs(1));
        assert_eq!(s.target_cycle_time(), Duration::from_millis(500));
        assert_eq!(s.event_repeat(), Duration::ZERO);
        for (k, v, needle) in [
            ("AUTOMATION_INTERVAL_SEC", "0", "AUTOMATION_INTERVAL_SEC"),
            ("TARGET_CYCLE_TIME_SEC", "0", "TARGET_CYCLE_TIME_SEC"),
            ("TARGET_CYCLE_TIME_SEC", "abc", "target_cycle_time_sec"),
            (
                "AUTOMATION_EVENT_REPEAT_SEC",
                "100000",
                "AUTOMATION_EVENT_REPEAT_SEC",
            ),
        ] {
            let err = AutomationSettings::from_vars(env_vars(&[(k, v)])).unwrap_err();
            assert!(err.to_string().contains(needle), "{k}={v}: {err}");
        }
    }
}
