//! The storage concerns of the shared settings: PostgreSQL (`DATABASE_URL`,
//! `PG_*`) and Redis (`REDIS_URL`).

use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use super::{SettingsError, de_from_str, de_opt_secret};

const fn default_port() -> u16 {
    5432
}
const fn default_max_connections() -> u32 {
    16
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_db() -> String {
    "hydro_dev".into()
}
fn default_user() -> String {
    "hydro".into()
}
fn default_pass() -> SecretString {
    SecretString::from("hydro")
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}

/// Where PostgreSQL is and how many connections a service keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct PgSettings {
    /// `DATABASE_URL`: wins over the `PG_*` pieces.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub database_url: Option<SecretString>,
    /// `PG_HOST`.
    #[serde(rename = "pg_host", default = "default_host")]
    pub host: String,
    /// `PG_PORT`.
    #[serde(
        rename = "pg_port",
        default = "default_port",
        deserialize_with = "de_from_str"
    )]
    pub port: u16,
    /// `PG_DB`.
    #[serde(rename = "pg_db", default = "default_db")]
    pub db: String,
    /// `PG_USER`.
    #[serde(rename = "pg_user", default = "default_user")]
    pub user: String,
    /// `PG_PASS`.
    #[serde(rename = "pg_pass", default = "default_pass")]
    pub pass: SecretString,
    /// `PG_MAX_CONNECTIONS`: size of the service's connection pool.
    #[serde(
        rename = "pg_max_connections",
        default = "default_max_connections",
        deserialize_with = "de_from_str"
    )]
    pub max_connections: u32,
}

impl PgSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_connections == 0 {
            return Err(SettingsError(
                "PG_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.database_url {
            let url_text = url.expose_secret();
            if !url_text.starts_with("postgres://") && !url_text.starts_with("postgresql://") {
                return Err(SettingsError(
                    "DATABASE_URL must start with postgres:// or postgresql://".into(),
                ));
            }
            PgConnectOptions::from_str(url_text)
                .map_err(|e| SettingsError(format!("DATABASE_URL is not a PostgreSQL URL: {e}")))?;
        }
        Ok(())
    }

    /// Connection options: `DATABASE_URL` if set, else the pieces.
    pub fn options(&self) -> PgConnectOptions {
        match &self.database_url {
            Some(url) => {
                PgConnectOptions::from_str(url.expose_secret()).expect("validated at load")
            }
            None => PgConnectOptions::new()
                .host(&self.host)
                .port(self.port)
                .database(&self.db)
                .username(&self.user)
                .password(self.pass.expose_secret()),
        }
    }
}

/// Where Redis is.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `REDIS_URL`.
    #[serde(rename = "redis_url", default = "default_redis_url")]
    pub url: String,
}

impl RedisSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if !self.url.starts_with("redis://") && !self.url.starts_with("rediss://") {
            return Err(SettingsError(
                "REDIS_URL must start with redis:// or rediss://".into(),
            ));
        }
        Ok(())
    }
}
