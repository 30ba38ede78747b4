//! Typed settings from the environment, with the contract's names and
//! defaults (section 1). Defaults point at 127.0.0.1 so a developer's machine
//! works with no settings at all; compose files set container host names.
//!
//! Secrets are [`SecretString`]s: `Debug` prints `[REDACTED]`, so logging the
//! settings at start is safe. Each secret variable may instead name a file
//! holding it (`PG_PASS_FILE`, …: [`from_env`]).

mod env;
mod production;

pub use env::*;
pub use production::*;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

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

const fn default_mqtt_port() -> u16 {
    1883
}
const fn default_pg_port() -> u16 {
    5432
}
const fn default_batch_size() -> usize {
    200
}
const fn default_flush_ms() -> u64 {
    500
}
const fn default_command_timeout_sec() -> u64 {
    30
}
const fn default_publish_timeout_ms() -> u64 {
    5000
}
const fn default_pg_max_connections() -> u32 {
    16
}
fn default_localhost() -> String {
    "127.0.0.1".into()
}
fn default_broker_id() -> String {
    "mqtt1".into()
}
fn default_pg_db() -> String {
    "hydro_dev".into()
}
fn default_pg_user() -> String {
    "hydro".into()
}
fn default_pg_pass() -> SecretString {
    SecretString::from("hydro")
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_node_secret() -> SecretString {
    SecretString::from(DEV_NODE_SECRET)
}
fn default_http_host() -> String {
    "0.0.0.0".into()
}

/// Settings every service shares. Service-specific settings live in the
/// service and are read with [`from_env`] too.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `MQTT_HOST`: the default broker's host.
    #[serde(default = "default_localhost")]
    pub mqtt_host: String,
    /// `MQTT_PORT`: the default broker's port.
    #[serde(default = "default_mqtt_port", deserialize_with = "de_from_str")]
    pub mqtt_port: u16,
    /// `MQTT_USER`: username for every broker, if they need one.
    #[serde(default)]
    pub mqtt_user: Option<String>,
    /// `MQTT_PASS`: password for `MQTT_USER`.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub mqtt_pass: Option<SecretString>,
    /// `MQTT_TLS`: connect with TLS (`mqtts`).
    #[serde(default, deserialize_with = "de_bool")]
    pub mqtt_tls: bool,
    /// `MQTT_BROKER_ID`: the id of the default broker in the `brokers` table.
    #[serde(default = "default_broker_id")]
    pub mqtt_broker_id: String,
    /// `MQTT_SHARE_GROUP`: the shared-subscription group of this service's
    /// instances; defaults to the service name. Set it to keep two separate
    /// deployments on one broker from splitting each other's messages.
    #[serde(default)]
    pub mqtt_share_group: Option<String>,
    /// `MQTT_PUBLISH_TIMEOUT_MS`: how long a QoS 1 publish may wait for the
    /// broker (connection and PUBACK) before it is reported failed.
    #[serde(
        default = "default_publish_timeout_ms",
        deserialize_with = "de_from_str"
    )]
    pub mqtt_publish_timeout_ms: u64,

    /// `DATABASE_URL`: wins over the `PG_*` pieces.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub database_url: Option<SecretString>,
    /// `PG_HOST`.
    #[serde(default = "default_localhost")]
    pub pg_host: String,
    /// `PG_PORT`.
    #[serde(default = "default_pg_port", deserialize_with = "de_from_str")]
    pub pg_port: u16,
    /// `PG_DB`.
    #[serde(default = "default_pg_db")]
    pub pg_db: String,
    /// `PG_USER`.
    #[serde(default = "default_pg_user")]
    pub pg_user: String,
    /// `PG_PASS`.
    #[serde(default = "default_pg_pass")]
    pub pg_pass: SecretString,
    /// `PG_MAX_CONNECTIONS`: size of the service's connection pool.
    #[serde(
        default = "default_pg_max_connections",
        deserialize_with = "de_from_str"
    )]
    pub pg_max_connections: u32,

    /// `REDIS_URL`.
    #[serde(default = "default_redis_url")]
    pub redis_url: String,

    /// `TELEMETRY_BATCH_SIZE`: rows per write batch.
    #[serde(default = "default_batch_size", deserialize_with = "de_from_str")]
    pub telemetry_batch_size: usize,
    /// `TELEMETRY_FLUSH_MS`: the longest a partial batch waits.
    #[serde(default = "default_flush_ms", deserialize_with = "de_from_str")]
    pub telemetry_flush_ms: u64,
    /// `COMMAND_TIMEOUT_SEC`: a command with no final status after this is TIMEOUT.
    #[serde(
        default = "default_command_timeout_sec",
        deserialize_with = "de_from_str"
    )]
    pub command_timeout_sec: u64,

    /// `BRIDGE_API_TOKEN`: bearer token the REST API demands; unset = no auth.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub bridge_api_token: Option<SecretString>,
    /// `NODE_DEFAULT_SECRET`: HMAC key for nodes without their own secret.
    #[serde(default = "default_node_secret")]
    pub node_default_secret: SecretString,

    /// `LOG_FORMAT`: `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// `HTTP_PORT`: the service's port; each service has its own default.
    #[serde(default, deserialize_with = "de_opt_from_str")]
    pub http_port: Option<u16>,
    /// `HTTP_HOST`: the address the HTTP server listens on; `0.0.0.0` (every
    /// interface) by default, `127.0.0.1` keeps it to the machine.
    #[serde(default = "default_http_host")]
    pub http_host: String,
    /// `HTTP_READS_REQUIRE_TOKEN`: whether reads (GET, HEAD) of the API need
    /// the bearer token too. Writes always do. Unset: the service's default
    /// (guarded on mqtt-bridge and device-registry, open elsewhere).
    /// `/health` and `/metrics` stay open for probes either way.
    #[serde(default, deserialize_with = "de_opt_from_str")]
    pub http_reads_require_token: Option<bool>,
    /// `HYDRO_ENV`: `production` makes the service refuse to start on any
    /// development default (see [`Settings::refuse_dev_defaults`]).
    #[serde(default)]
    pub hydro_env: Option<String>,
}

impl Settings {
    /// Reads and validates the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_vars(None)
    }

    /// Reads and validates the given variables instead of the environment.
    pub fn from_vars(vars: Option<HashMap<String, String>>) -> Result<Self, SettingsError> {
        let s: Settings = from_env(vars)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let fail = |m: &str| Err(SettingsError(m.to_owned()));
        if self.mqtt_host.trim().is_empty() {
            return fail("MQTT_HOST must not be empty");
        }
        if self.mqtt_port == 0 {
            return fail("MQTT_PORT must be a port number between 1 and 65535");
        }
        if !(1..=100_000).contains(&self.telemetry_batch_size) {
            return fail("TELEMETRY_BATCH_SIZE must be between 1 and 100000");
        }
        if !(1..=60_000).contains(&self.telemetry_flush_ms) {
            return fail("TELEMETRY_FLUSH_MS must be between 1 and 60000");
        }
        if !(1..=86_400).contains(&self.command_timeout_sec) {
            return fail("COMMAND_TIMEOUT_SEC must be between 1 and 86400");
        }
        if !(100..=600_000).contains(&self.mqtt_publish_timeout_ms) {
            return fail("MQTT_PUBLISH_TIMEOUT_MS must be between 100 and 600000");
        }
        if let Some(g) = &self.mqtt_share_group
            && (g.contains(['/', '+', '#']) || g.len() > 64)
        {
            return fail(
                "MQTT_SHARE_GROUP must not contain /, + or # and be at most 64 characters",
            );
        }
        if self.http_host.trim().is_empty() {
            return fail("HTTP_HOST must not be empty (0.0.0.0 listens on every interface)");
        }
        if let Some(env) = &self.hydro_env
            && !matches!(
                env.trim().to_ascii_lowercase().as_str(),
                "" | "production" | "prod" | "development" | "dev" | "test"
            )
        {
            return fail("HYDRO_ENV must be production, development or test");
        }
        if self.pg_max_connections == 0 {
            return fail("PG_MAX_CONNECTIONS must be at least 1");
        }
        if self.mqtt_pass.is_some() && self.mqtt_user.is_none() {
            return fail("MQTT_PASS is set but MQTT_USER is not");
        }
        if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("rediss://") {
            return fail("REDIS_URL must start with redis:// or rediss://");
        }
        if let Some(url) = &self.database_url {
            let url_text = url.expose_secret();
            if !url_text.starts_with("postgres://") && !url_text.starts_with("postgresql://") {
                return fail("DATABASE_URL must start with postgres:// or postgresql://");
            }
            PgConnectOptions::from_str(url.expose_secret())
                .map_err(|e| SettingsError(format!("DATABASE_URL is not a PostgreSQL URL: {e}")))?;
        }
        Ok(())
    }

    /// Connection options for PostgreSQL: `DATABASE_URL` if set, else the pieces.
    pub fn pg_options(&self) -> PgConnectOptions {
        match &self.database_url {
            Some(url) => {
                PgConnectOptions::from_str(url.expose_secret()).expect("validated at load")
            }
            None => PgConnectOptions::new()
                .host(&self.pg_host)
                .port(self.pg_port)
                .database(&self.pg_db)
                .username(&self.pg_user)
                .password(self.pg_pass.expose_secret()),
        }
    }

    /// The default broker's URL, e.g. `mqtt://127.0.0.1:1883`.
    pub fn default_broker_url(&self) -> String {
        let scheme = if self.mqtt_tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}", self.mqtt_host, self.mqtt_port)
    }

    /// The shared-subscription group: `MQTT_SHARE_GROUP`, else the service name.
    pub fn share_group_or<'a>(&'a self, service: &'a str) -> &'a str {
        self.mqtt_share_group
            .as_deref()
            .filter(|g| !g.is_empty())
            .unwrap_or(service)
    }

    /// The HTTP port: `HTTP_PORT` if set, else the service's default.
    pub fn http_port_or(&self, default: u16) -> u16 {
        self.http_port.unwrap_or(default)
    }

    /// The command timeout as a duration.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_sec)
    }

    /// The publish timeout as a duration.
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.mqtt_publish_timeout_ms)
    }

    /// The address to bind: `HTTP_HOST` and `HTTP_PORT` (else `default_port`).
    pub fn http_addr(&self, default_port: u16) -> (String, u16) {
        (
            self.http_host.trim().to_owned(),
            self.http_port_or(default_port),
        )
    }

    /// Whether API reads need the token: `HTTP_READS_REQUIRE_TOKEN`, else
    /// the service's `default`.
    pub fn reads_require_token_or(&self, default: bool) -> bool {
        self.http_reads_require_token.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests;
