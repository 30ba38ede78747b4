//! Checking [`SimSettings`] (its [`FromEnv`] impl, so `SimSettings::load`
//! refuses a bad value): every value is validated before anything starts,
//! and each error names the variable to fix.

use common::settings::{FromEnv, SettingsError, require};

use super::brokers::split_urls;
use super::{MAX_PROBES, MIN_INTERVAL_MS, SimMode, SimSettings};

/// The longest response delay accepted, from the environment or `PUT /sim/faults`.
pub const MAX_RESPONSE_DELAY_MS: u64 = 600_000;

/// Checks a probability setting; the error names the setting.
pub fn check_probability(name: &str, p: f64) -> Result<(), String> {
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be a probability between 0 and 1, got {p}"
        ))
    }
}

/// Checks a response delay; the error names the setting.
pub fn check_delay(name: &str, ms: u64) -> Result<(), String> {
    if ms <= MAX_RESPONSE_DELAY_MS {
        Ok(())
    } else {
        Err(format!(
            "{name} must be at most {MAX_RESPONSE_DELAY_MS} ms, got {ms}"
        ))
    }
}

impl FromEnv for SimSettings {
    /// Checks every value; the error names the variable to fix.
    fn validate(&self) -> Result<(), SettingsError> {
        let uid_ok = !self.greenhouse.is_empty()
            && self.greenhouse.len() <= 64
            && self
                .greenhouse
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let checks = [
            (
                uid_ok,
                "SIM_GREENHOUSE must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `-`"
                    .to_owned(),
            ),
            (
                self.seed_db || !self.seed_recipe,
                "SIM_SEED_RECIPE needs SIM_SEED_DB=true".to_owned(),
            ),
            (self.zones >= 1, "SIM_ZONES must be at least 1".to_owned()),
            (self.nodes >= 1, "SIM_NODES must be at least 1".to_owned()),
            (
                self.telemetry_interval_ms >= MIN_INTERVAL_MS,
                format!("SIM_TELEMETRY_INTERVAL_MS must be at least {MIN_INTERVAL_MS}"),
            ),
            (
                self.fallback_after_ms >= 100,
                "SIM_FALLBACK_AFTER_MS must be at least 100".to_owned(),
            ),
            (
                self.probes <= MAX_PROBES,
                format!("SIM_PROBES must be at most {MAX_PROBES}"),
            ),
            (
                !self.hardware_seed.is_empty(),
                "SIM_HARDWARE_SEED must not be empty".to_owned(),
            ),
            (
                self.time_retry_ms >= 100,
                "SIM_TIME_RETRY_MS must be at least 100".to_owned(),
            ),
            (
                self.mode == SimMode::Classic || !self.seed_recipe,
                "SIM_SEED_RECIPE needs SIM_MODE=classic (firmware nodes are not seeded)".to_owned(),
            ),
            (
                self.heartbeat_interval_ms >= MIN_INTERVAL_MS,
                format!("SIM_HEARTBEAT_INTERVAL_MS must be at least {MIN_INTERVAL_MS}"),
            ),
        ];
        if let Some((_, message)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(SettingsError(message));
        }
        check_probability("SIM_DROP_RESPONSES", self.drop_responses).map_err(SettingsError)?;
        check_probability("SIM_DUPLICATE_RESPONSES", self.duplicate_responses)
            .map_err(SettingsError)?;
        check_delay("SIM_RESPONSE_DELAY_MS", self.response_delay_ms).map_err(SettingsError)?;
        if let Some(url) = &self.broker_url {
            common::mqtt::parse_broker_url(url)
                .map_err(|e| SettingsError(format!("SIM_BROKER_URL: {e}")))?;
        }
        if let Some(list) = &self.broker_urls {
            let urls = split_urls(list);
            require(
                !urls.is_empty(),
                "SIM_BROKER_URLS must list at least one broker URL",
            )?;
            for url in urls {
                common::mqtt::parse_broker_url(url)
                    .map_err(|e| SettingsError(format!("SIM_BROKER_URLS: {url}: {e}")))?;
            }
        }
        Ok(())
    }
}
