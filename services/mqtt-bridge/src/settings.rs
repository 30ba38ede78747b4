//! mqtt-bridge's own settings (`COMMAND_TIMEOUT_SEC`), read from the
//! environment next to the shared [`common::settings::Settings`] and
//! validated before anything starts.

use common::settings::{FromEnv, SettingsError, within};
use serde::Deserialize;

/// How long a command may stay without a final status.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BridgeSettings {
    /// `COMMAND_TIMEOUT_SEC`: a command with no final status after this is
    /// TIMEOUT; default 30.
    pub command_timeout_sec: u64,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            command_timeout_sec: 30,
        }
    }
}

impl FromEnv for BridgeSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        within("COMMAND_TIMEOUT_SEC", self.command_timeout_sec, 1, 86_400)
    }
}

common::durations!(BridgeSettings {
    /// The command timeout as a duration.
    command_timeout: from_secs(command_timeout_sec),
});

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use common::settings::env_vars;

    #[test]
    fn the_timeout_defaults_to_30_s_and_is_bounded() {
        let s = BridgeSettings::from_vars(env_vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.command_timeout_sec, 30);
        let s = BridgeSettings::from_vars(env_vars(&[("COMMAND_TIMEOUT_SEC", "5")])).unwrap();
        assert_eq!(s.command_timeout(), Duration::from_secs(5));
        testkit::assert_each_refused::<BridgeSettings>(&[
            ("COMMAND_TIMEOUT_SEC", "0"),
            ("COMMAND_TIMEOUT_SEC", "86401"),
            ("COMMAND_TIMEOUT_SEC", "soon"),
        ]);
    }
}
