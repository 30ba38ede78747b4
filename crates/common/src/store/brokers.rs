//! The `brokers` table: the MQTT brokers, their role, status and load, as
//! broker-registry keeps them. Read for every service's broker pool
//! (`mqtt::pool`: the enabled brokers), for the command path (whether
//! another broker could take a node: `commands::route`), for placement
//! (addresses, the planner's view), for failover's watcher and for
//! device-registry (the URL a NodeConfig names); the status is written for
//! `placement::broker_status`.

use crate::placement::balance::BrokerView;
use crate::placement::broker_status::BrokerStatus;
use sqlx::{PgConnection, PgExecutor};

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

/// A broker's id and URL.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BrokerAddress {
    pub id: String,
    pub url: String,
}

/// A broker's id and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerState {
    pub id: String,
    pub status: BrokerStatus,
}

/// Every broker, by id, disabled or down ones included.
pub async fn all(db: impl PgExecutor<'_>) -> Result<Vec<BrokerAddress>, sqlx::Error> {
    sqlx::query_as!(BrokerAddress, "SELECT id, url FROM brokers ORDER BY id")
        .fetch_all(db)
        .await
}

/// The enabled brokers, by id: those a process connects to.
pub async fn enabled(db: impl PgExecutor<'_>) -> Result<Vec<BrokerAddress>, sqlx::Error> {
    sqlx::query_as!(
        BrokerAddress,
        "SELECT id, url FROM brokers WHERE enabled ORDER BY id"
    )
    .fetch_all(db)
    .await
}

/// Brokers a node may be sent to or fall back to: enabled, not draining,
/// not OFFLINE, by id.
pub async fn reachable(db: impl PgExecutor<'_>) -> Result<Vec<BrokerAddress>, sqlx::Error> {
    sqlx::query_as!(
        BrokerAddress,
        "SELECT id, url FROM brokers WHERE enabled AND NOT draining AND status <> 'OFFLINE' ORDER BY id"
    )
    .fetch_all(db)
    .await
}

/// The status of every enabled broker.
pub async fn enabled_states(db: impl PgExecutor<'_>) -> Result<Vec<BrokerState>, sqlx::Error> {
    sqlx::query_as!(
        BrokerState,
        r#"SELECT id, status AS "status: BrokerStatus" FROM brokers WHERE enabled"#
    )
    .fetch_all(db)
    .await
}

/// Every broker as the planner sees it, by id.
pub async fn views(db: impl PgExecutor<'_>) -> Result<Vec<BrokerView>, sqlx::Error> {
    sqlx::query_as!(
        BrokerView,
        r#"SELECT id, role AS "role: _", status AS "status: _", enabled, draining, load_index
           FROM brokers ORDER BY id"#
    )
    .fetch_all(db)
    .await
}

/// Sets broker `id`'s status to `to`, locking its row, unless it is `to`
/// already or (without `from_offline`) OFFLINE. Returns the status it had
/// when it changed.
pub async fn update_status(
    db: &mut PgConnection,
    id: &str,
    to: BrokerStatus,
    from_offline: bool,
) -> Result<Option<BrokerStatus>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH old AS (SELECT id, status FROM brokers WHERE id = $1 FOR UPDATE)
           UPDATE brokers b SET status = $2, updated_at = now() FROM old
           WHERE b.id = old.id AND old.status <> $2 AND ($3 OR old.status <> 'OFFLINE')
           RETURNING old.status AS "status: BrokerStatus""#,
        id,
        to.as_str(),
        from_offline
    )
    .fetch_optional(db)
    .await
}
