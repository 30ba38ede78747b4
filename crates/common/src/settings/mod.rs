//! Typed settings from the environment, with the contract's names and
//! defaults (section 1). Defaults point at 127.0.0.1 so a developer's machine
//! works with no settings at all; compose files set container host names.
//!
//! Secrets are [`SecretString`]s: `Debug` prints `[REDACTED]`, so logging the
//! settings at start is safe. Each secret variable may instead name a file
//! holding it (`PG_PASS_FILE`, …: [`from_env`]).
//!
//! A service's own settings implement [`FromEnv`] (read, then validated);
//! [`durations!`](crate::durations) writes their `Duration` views.

mod database;
mod env;
mod http;
mod mqtt;
mod production;
mod text;

pub use database::*;
pub use env::*;
pub use http::*;
pub use mqtt::*;
pub use production::*;

use std::collections::HashMap;

use secrecy::SecretString;
use serde::Deserialize;

/// Writes the `Duration` views of a settings struct's numeric fields, one
/// line each: `durations!(S { tick: from_secs(tick_sec) })` gives
/// `S::tick(&self) -> Duration`, `Duration::from_secs(self.tick_sec)` (any
/// `Duration` constructor of one number: `from_millis`, `from_secs_f64`, …).
#[macro_export]
macro_rules! durations {
    ($settings:ty { $($(#[$doc:meta])* $name:ident: $unit:ident($field:ident)),* $(,)? }) => {
        impl $settings {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> ::std::time::Duration {
                    ::std::time::Duration::$unit(self.$field)
                }
            )*
        }
    };
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings every service shares, one struct per concern, each read from
/// the contract's flat variable names (`MQTT_HOST` is `mqtt.host`). A knob
/// only one service reads lives in that service's settings, read with
/// [`from_env`] too.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `MQTT_*`: the default broker and how to log in to every broker.
    pub mqtt: MqttSettings,
    /// `DATABASE_URL`, `PG_*`: PostgreSQL.
    pub pg: PgSettings,
    /// `REDIS_URL`.
    pub redis: RedisSettings,
    /// `HTTP_*`, `BRIDGE_API_TOKEN`: the service's HTTP server and its API.
    pub http: HttpSettings,
    /// `NODE_DEFAULT_SECRET`: HMAC key for nodes without their own secret;
    /// default [`DEV_NODE_SECRET`].
    pub node_default_secret: SecretString,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `HYDRO_ENV`: `production` makes the service refuse to start on any
    /// development default (see [`Settings::refuse_dev_defaults`]).
    pub hydro_env: Option<String>,
}

/// The shared settings that belong to no concern of their own (documented
/// on [`Settings`]).
#[derive(Deserialize)]
#[serde(default)]
struct General {
    node_default_secret: SecretString,
    log_format: LogFormat,
    hydro_env: Option<String>,
}

impl Default for General {
    fn default() -> Self {
        General {
            node_default_secret: SecretString::from(DEV_NODE_SECRET),
            log_format: LogFormat::Text,
            hydro_env: None,
        }
    }
}

impl Settings {
    /// Reads and validates the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_vars(None)
    }

    /// Reads and validates the given variables instead of the environment.
    /// Secret files are read once; then each concern is read on its own, so
    /// an error names its variable.
    pub fn from_vars(vars: Option<HashMap<String, String>>) -> Result<Self, SettingsError> {
        let vars = with_secret_files(vars.unwrap_or_else(process_vars))?;
        let general: General = env::from_resolved(vars.clone())?;
        let s = Settings {
            mqtt: env::from_resolved(vars.clone())?,
            pg: env::from_resolved(vars.clone())?,
            redis: env::from_resolved(vars.clone())?,
            http: env::from_resolved(vars)?,
            node_default_secret: general.node_default_secret,
            log_format: general.log_format,
            hydro_env: general.hydro_env,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.mqtt.validate()?;
        self.pg.validate()?;
        self.redis.validate()?;
        self.http.validate()?;
        require(
            self.hydro_env.as_ref().is_none_or(|env| {
                matches!(
                    env.to_ascii_lowercase().as_str(),
                    "production" | "prod" | "development" | "dev" | "test"
                )
            }),
            "HYDRO_ENV must be production, development or test",
        )
    }
}

#[cfg(test)]
mod tests;
