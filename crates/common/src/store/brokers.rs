//! The `brokers` table: the MQTT brokers of the fleet, one row each.
//! Used by device-registry (the URL a NodeConfig names).
//!
//! The `brokers` table, as the command path reads it: the enabled brokers a
//! process connects to ([`crate::mqtt::pool`]) and whether another broker
//! could take a node, so a failover is to be expected
//! ([`crate::commands::route`]).

use sqlx::PgExecutor;

/// The URL of broker `id`, if it is registered.
pub async fn url(db: impl PgExecutor<'_>, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT url FROM brokers WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// Whether a broker other than `broker_id` is enabled, not draining and not
/// OFFLINE.
pub async fn other_usable(db: impl PgExecutor<'_>, broker_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM brokers WHERE enabled AND NOT draining \
                        AND status <> 'OFFLINE' AND id <> $1) AS \"usable!\"",
        broker_id
    )
    .fetch_one(db)
    .await
}

/// An enabled broker's id and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub id: String,
    pub url: String,
}

/// Every enabled broker, by id.
pub async fn enabled(db: impl PgExecutor<'_>) -> Result<Vec<BrokerUrl>, sqlx::Error> {
    sqlx::query_as!(
        BrokerUrl,
        "SELECT id, url FROM brokers WHERE enabled ORDER BY id"
    )
    .fetch_all(db)
    .await
}
