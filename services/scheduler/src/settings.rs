//! scheduler's own settings, read from the environment next to the shared
//! [`common::settings::Settings`] and validated before anything starts.

use common::settings::{FromEnv, SettingsError, require, within};
use serde::Deserialize;

/// How often the scheduler looks and how late a slot may still fire.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SchedulerSettings {
    /// `SCHEDULER_TICK_SEC`: time between two ticks (the first is at start);
    /// default 60.
    pub scheduler_tick_sec: u64,
    /// `SCHEDULER_CATCHUP_MAX_AGE_SEC`: a slot found due later than this
    /// (the service was down, or no instance held the lease) is not fired
    /// but recorded as missed, with a zone event. Default 900.
    pub scheduler_catchup_max_age_sec: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            scheduler_tick_sec: 60,
            scheduler_catchup_max_age_sec: 900,
        }
    }
}

impl FromEnv for SchedulerSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        within("SCHEDULER_TICK_SEC", self.scheduler_tick_sec, 1, 3_600)?;
        // Below a tick, a slot could be missed between two healthy ticks.
        require(
            (self.scheduler_tick_sec..=86_400).contains(&self.scheduler_catchup_max_age_sec),
            "SCHEDULER_CATCHUP_MAX_AGE_SEC must be at least SCHEDULER_TICK_SEC and at most 86400",
        )
    }
}

common::durations!(SchedulerSettings {
    tick: from_secs(scheduler_tick_sec),
});

impl SchedulerSettings {
    pub fn catch_up_max_age(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.scheduler_catchup_max_age_sec as i64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use testkit::env_vars;

    use super::*;

    #[test]
    fn defaults() {
        let s = SchedulerSettings::from_vars(env_vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.tick(), Duration::from_secs(60));
        assert_eq!(s.catch_up_max_age(), chrono::Duration::minutes(15));
    }

    #[test]
    fn overrides_and_refusals() {
        let s = SchedulerSettings::from_vars(env_vars(&[
            ("SCHEDULER_TICK_SEC", "1"),
            ("SCHEDULER_CATCHUP_MAX_AGE_SEC", "60"),
        ]))
        .unwrap();
        assert_eq!(s.tick(), Duration::from_secs(1));
        assert_eq!(s.catch_up_max_age(), chrono::Duration::minutes(1));
        for (vars, needle) in [
            (vec![("SCHEDULER_TICK_SEC", "0")], "SCHEDULER_TICK_SEC"),
            (vec![("SCHEDULER_TICK_SEC", "x")], "scheduler_tick_sec"),
            (
                vec![
                    ("SCHEDULER_TICK_SEC", "120"),
                    ("SCHEDULER_CATCHUP_MAX_AGE_SEC", "60"),
                ],
                "SCHEDULER_CATCHUP_MAX_AGE_SEC",
            ),
        ] {
            let err = SchedulerSettings::from_vars(env_vars(&vars)).unwrap_err();
            assert!(err.to_string().contains(needle), "{vars:?}: {err}");
        }
    }
}
