//! The `brokers` table: the MQTT brokers, their role, status and load, as
//! broker-registry keeps them. Read for every service's broker pool
//! (`mqtt::pool`: the enabled brokers), for the command path (whether
//! another broker could take a node: `commands::route`), for placement
//! (addresses, the planner's view), for failover's watcher and for
//! device-registry (the URL a NodeConfig names); the status is written for
//! `placement::broker_status`. broker-registry seeds and changes the list,
//! shows it with each broker's node counts ([`overview`]) and writes what its
//! health monitor measures ([`record_figures`]).

use crate::placement::balance::{BrokerView, Role};
use crate::placement::broker_status::BrokerStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;
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

/// Registers broker `id` at `url` unless its id or URL is taken; true when
/// it was added.
pub async fn insert(
    db: impl PgExecutor<'_>,
    id: &str,
    url: &str,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO brokers (id, url, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        id,
        url,
        role.as_str()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets what is given of broker `id`'s `enabled`, `draining` and `role`;
/// false when there is no such broker.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: &str,
    enabled: Option<bool>,
    draining: Option<bool>,
    role: Option<Role>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE brokers SET enabled = COALESCE($2, enabled), draining = COALESCE($3, draining), \
                role = COALESCE($4, role), updated_at = now() WHERE id = $1",
        id,
        enabled,
        draining,
        role.map(Role::as_str)
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One broker as the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BrokerRow {
    pub id: String,
    pub url: String,
    pub role: Role,
    pub status: BrokerStatus,
    pub enabled: bool,
    pub draining: bool,
    pub load_index: f64,
    pub connections: i32,
    pub msgs_per_sec: f64,
    pub latency_ms: Option<f64>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Nodes assigned to it.
    pub nodes: i64,
    /// Of those, moves not yet confirmed by the node.
    pub unconfirmed: i64,
}

/// Every broker with its node counts, by id.
pub async fn overview(db: impl PgExecutor<'_>) -> Result<Vec<BrokerRow>, sqlx::Error> {
    sqlx::query_as!(
        BrokerRow,
        r#"SELECT b.id, b.url, b.role AS "role: Role", b.status AS "status: BrokerStatus",
                  b.enabled, b.draining, b.load_index, b.connections, b.msgs_per_sec,
                  b.latency_ms, b.last_seen_at,
                  count(a.node_id) AS "nodes!",
                  count(a.node_id) FILTER (WHERE a.confirmed_at IS NULL) AS "unconfirmed!"
           FROM brokers b LEFT JOIN node_broker_assignments a ON a.broker_id = b.id
           GROUP BY b.id ORDER BY b.id"#
    )
    .fetch_all(db)
    .await
}

/// What one health sample measured of a broker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub load_index: f64,
    pub connections: i32,
    pub msgs_per_sec: f64,
    /// The probe's round trip; `None` when it failed (the last latency and
    /// `last_seen_at` then stay).
    pub latency_ms: Option<f64>,
}

/// Writes broker `id`'s current `figures`; returns its status.
pub async fn record_figures(
    db: impl PgExecutor<'_>,
    id: &str,
    figures: &Measured,
) -> Result<BrokerStatus, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE brokers SET load_index = $2, connections = $3, msgs_per_sec = $4,
               latency_ms = COALESCE($5, latency_ms),
               last_seen_at = CASE WHEN $5 IS NULL THEN last_seen_at ELSE now() END, updated_at = now()
           WHERE id = $1 RETURNING status AS "status: BrokerStatus""#,
        id,
        figures.load_index,
        figures.connections,
        figures.msgs_per_sec,
        figures.latency_ms
    )
    .fetch_one(db)
    .await
}
