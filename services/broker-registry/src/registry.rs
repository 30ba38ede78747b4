//! The broker list: seeded from `MQTT_BROKERS` at first start, changed
//! through the API afterwards (add, disable, drain, role). Every service
//! follows the table (see `common::mqtt::pool`), so a change here reaches them
//! without a restart.

use common::placement::balance::Role;
use serde::Serialize;
use sqlx::PgPool;
use tracing::info;

use crate::settings::SeedBroker;

/// Checks a broker id against the schema's rule, naming what is wrong.
pub fn check_id(id: &str) -> Result<(), String> {
    let id = id.trim();
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "broker id `{id}` must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-`"
        ))
    }
}

/// Inserts the configured brokers that are not in the table yet; returns
/// how many were added. Rows already there keep what the API made of them.
pub async fn seed(pool: &PgPool, brokers: &[SeedBroker]) -> Result<u64, sqlx::Error> {
    let mut added = 0;
    for b in brokers {
        let done = sqlx::query(
            "INSERT INTO brokers (id, url, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&b.id)
        .bind(&b.url)
        .bind(b.role.as_str())
        .execute(pool)
        .await?;
        if done.rows_affected() == 1 {
            info!(broker = %b.id, url = %b.url, role = b.role.as_str(), "Broker registered.");
            added += 1;
        }
    }
    Ok(added)
}

/// One broker as the API and the dashboard show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BrokerRow {
    pub id: String,
    pub url: String,
    pub role: String,
    pub status: String,
    pub enabled: bool,
    pub draining: bool,
    pub load_index: f64,
    pub connections: i32,
    pub msgs_per_sec: f64,
    pub latency_ms: Option<f64>,
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Nodes assigned to it.
    pub nodes: i64,
    /// Of those, moves not yet confirmed by the node.
    pub unconfirmed: i64,
}

/// Every broker, by id.
pub async fn list(pool: &PgPool) -> Result<Vec<BrokerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.id, b.url, b.role, b.status, b.enabled, b.draining, b.load_index, b.connections, \
                b.msgs_per_sec, b.latency_ms, b.last_seen_at, \
                count(a.node_id) AS nodes, count(a.node_id) FILTER (WHERE a.confirmed_at IS NULL) AS unconfirmed \
         FROM brokers b LEFT JOIN node_broker_assignments a ON a.broker_id = b.id \
         GROUP BY b.id ORDER BY b.id",
    )
    .fetch_all(pool)
    .await
}

/// A new broker.
#[derive(Debug, Clone)]
pub struct NewBroker {
    pub id: String,
    pub url: String,
    pub role: Role,
}

/// Why a change to the list was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Conflict(String),
    #[error("broker `{0}` does not exist")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Adds a broker; its id and URL must both be new.
pub async fn add(pool: &PgPool, b: &NewBroker) -> Result<(), ChangeError> {
    let done = sqlx::query(
        "INSERT INTO brokers (id, url, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&b.id)
    .bind(&b.url)
    .bind(b.role.as_str())
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ChangeError::Conflict(format!(
            "a broker with id `{}` or URL `{}` exists already",
            b.id, b.url
        )));
    }
    info!(broker = %b.id, url = %b.url, "Broker added.");
    Ok(())
}

/// What an operator may change on a broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerChange {
    pub enabled: Option<bool>,
    pub draining: Option<bool>,
    pub role: Option<Role>,
}

/// Applies `change` to broker `id`.
pub async fn update(pool: &PgPool, id: &str, change: &BrokerChange) -> Result<(), ChangeError> {
    let done = sqlx::query(
        "UPDATE brokers SET enabled = COALESCE($2, enabled), draining = COALESCE($3, draining), \
                role = COALESCE($4, role), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(change.enabled)
    .bind(change.draining)
    .bind(change.role.map(Role::as_str))
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ChangeError::NotFound(id.to_owned()));
    }
    info!(broker = id, ?change, "Broker changed.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("mqtt-1_a").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a b").unwrap_err().contains("a b"));
        assert!(check_id(&"x".repeat(65)).is_err());
    }
}
