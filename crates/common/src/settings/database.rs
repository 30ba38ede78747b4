//! The storage concerns of the shared settings: PostgreSQL (`DATABASE_URL`,
//! `PG_*`) and Redis (`REDIS_URL`).

use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use super::{SettingsError, require};

/// Where PostgreSQL is and how many connections a service keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PgSettings {
    /// `DATABASE_URL`: wins over the `PG_*` pieces; unset by default.
    pub database_url: Option<SecretString>,
    /// `PG_HOST`, default `127.0.0.1`.
    #[serde(rename = "pg_host")]
    pub host: String,
    /// `PG_PORT`, default 5432.
    #[serde(rename = "pg_port")]
    pub port: u16,
    /// `PG_DB`, default `hydro_dev`.
    #[serde(rename = "pg_db")]
    pub db: String,
    /// `PG_USER`, default `hydro`.
    #[serde(rename = "pg_user")]
    pub user: String,
    /// `PG_PASS`, default `hydro`.
    #[serde(rename = "pg_pass")]
    pub pass: SecretString,
    /// `PG_MAX_CONNECTIONS`: size of the service's connection pool; default 16.
    #[serde(rename = "pg_max_connections")]
    pub max_connections: u32,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            database_url: None,
            host: "127.0.0.1".into(),
            port: 5432,
            db: "hydro_dev".into(),
            user: "hydro".into(),
            pass: SecretString::from("hydro"),
            max_connections: 16,
        }
    }
}

impl PgSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        require(
            self.max_connections > 0,
            "PG_MAX_CONNECTIONS must be at least 1",
        )?;
        if let Some(url) = &self.database_url {
            let url_text = url.expose_secret();
            require(
                url_text.starts_with("postgres://") || url_text.starts_with("postgresql://"),
                "DATABASE_URL must start with postgres:// or postgresql://",
            )?;
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
#[serde(default)]
pub struct RedisSettings {
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    #[serde(rename = "redis_url")]
    pub url: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
        }
    }
}

impl RedisSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        require(
            self.url.starts_with("redis://") || self.url.starts_with("rediss://"),
            "REDIS_URL must start with redis:// or rediss://",
        )
    }
}
