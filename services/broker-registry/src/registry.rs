//! The broker list: seeded from `MQTT_BROKERS` at first start, changed
//! through the API afterwards (add, disable, drain, role). Every service
//! follows the table (see `common::mqtt::pool`), so a change here reaches them
//! without a restart. The rows are `common::store::brokers`'; this is what
//! the service makes of a change (checks, refusals, log lines).

use common::placement::balance::Role;
use common::store::brokers;
use sqlx::PgPool;
use tracing::info;

/// A broker to register: one of `MQTT_BROKERS`, or the default broker.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedBroker {
    pub id: String,
    pub url: String,
    pub role: Role,
}

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
        if brokers::insert(pool, &b.id, &b.url, b.role).await? {
            info!(broker = %b.id, url = %b.url, role = b.role.as_str(), "Broker registered.");
            added += 1;
        }
    }
    Ok(added)
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
    if !brokers::insert(pool, &b.id, &b.url, b.role).await? {
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
    let found = brokers::update(pool, id, change.enabled, change.draining, change.role).await?;
    if !found {
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
