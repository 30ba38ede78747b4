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

queries! {
    /// The URL of broker `id`, if it is registered.
    pub fn url(db, id: &str) -> Option<String> {
        fetch_optional(query_scalar!("SELECT url FROM brokers WHERE id = $1", id))
    }

    /// Whether a broker other than `broker_id` is enabled, not draining and
    /// not OFFLINE.
    pub fn other_usable(db, broker_id: &str) -> bool {
        fetch_one(query_scalar!(
            "SELECT EXISTS (SELECT 1 FROM brokers WHERE enabled AND NOT draining \
                            AND status <> 'OFFLINE' AND id <> $1) AS \"usable!\"",
            broker_id
        ))
    }
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

queries! {
    /// Every broker, by id, disabled or down ones included.
    pub fn all(db) -> Vec<BrokerAddress> {
        fetch_all(query_as!(BrokerAddress, "SELECT id, url FROM brokers ORDER BY id"))
    }

    /// The enabled brokers, by id: those a process connects to.
    pub fn enabled(db) -> Vec<BrokerAddress> {
        fetch_all(query_as!(BrokerAddress, "SELECT id, url FROM brokers WHERE enabled ORDER BY id"))
    }

    /// Brokers a node may be sent to or fall back to: enabled, not draining,
    /// not OFFLINE, by id.
    pub fn reachable(db) -> Vec<BrokerAddress> {
        fetch_all(query_as!(
            BrokerAddress,
            "SELECT id, url FROM brokers WHERE enabled AND NOT draining AND status <> 'OFFLINE' ORDER BY id"
        ))
    }

    /// The status of every enabled broker.
    pub fn enabled_states(db) -> Vec<BrokerState> {
        fetch_all(query_as!(
            BrokerState,
            r#"SELECT id, status AS "status: BrokerStatus" FROM brokers WHERE enabled"#
        ))
    }

    /// Every broker as the planner sees it, by id.
    pub fn views(db) -> Vec<BrokerView> {
        fetch_all(query_as!(
            BrokerView,
            r#"SELECT id, role AS "role: _", status AS "status: _", enabled, draining, load_index
               FROM brokers ORDER BY id"#
        ))
    }

    /// Sets broker `id`'s status to `to`, locking its row, unless it is `to`
    /// already or (without `from_offline`) OFFLINE. Returns the status it had
    /// when it changed.
    pub fn update_status(db, id: &str, to: BrokerStatus, from_offline: bool) -> Option<BrokerStatus> {
        fetch_optional(query_scalar!(
            r#"WITH old AS (SELECT id, status FROM brokers WHERE id = $1 FOR UPDATE)
               UPDATE brokers b SET status = $2, updated_at = now() FROM old
               WHERE b.id = old.id AND old.status <> $2 AND ($3 OR old.status <> 'OFFLINE')
               RETURNING old.status AS "status: BrokerStatus""#,
            id, to.as_str(), from_offline
        ))
    }

    /// Registers broker `id` at `url` unless its id or URL is taken; true
    /// when it was added.
    pub fn insert(db, id: &str, url: &str, role: Role) -> bool {
        one_row(query!(
            "INSERT INTO brokers (id, url, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            id, url, role.as_str()
        ))
    }

    /// Sets what is given of broker `id`'s `enabled`, `draining` and `role`;
    /// false when there is no such broker.
    pub fn update(db, id: &str, enabled: Option<bool>, draining: Option<bool>, role: Option<Role>) -> bool {
        one_row(query!(
            "UPDATE brokers SET enabled = COALESCE($2, enabled), draining = COALESCE($3, draining), \
                    role = COALESCE($4, role), updated_at = now() WHERE id = $1",
            id, enabled, draining, role.map(Role::as_str)
        ))
    }
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

queries! {
    /// Every broker with its node counts, by id.
    pub fn overview(db) -> Vec<BrokerRow> {
        fetch_all(query_as!(
            BrokerRow,
            r#"SELECT b.id, b.url, b.role AS "role: Role", b.status AS "status: BrokerStatus",
                      b.enabled, b.draining, b.load_index, b.connections, b.msgs_per_sec,
                      b.latency_ms, b.last_seen_at,
                      count(a.node_id) AS "nodes!",
                      count(a.node_id) FILTER (WHERE a.confirmed_at IS NULL) AS "unconfirmed!"
               FROM brokers b LEFT JOIN node_broker_assignments a ON a.broker_id = b.id
               GROUP BY b.id ORDER BY b.id"#
        ))
    }
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

queries! {
    /// Writes broker `id`'s current `figures`; returns its status.
    pub fn record_figures(db, id: &str, figures: &Measured) -> BrokerStatus {
        fetch_one(query_scalar!(
            r#"UPDATE brokers SET load_index = $2, connections = $3, msgs_per_sec = $4,
                   latency_ms = COALESCE($5, latency_ms),
                   last_seen_at = CASE WHEN $5 IS NULL THEN last_seen_at ELSE now() END, updated_at = now()
               WHERE id = $1 RETURNING status AS "status: BrokerStatus""#,
            id, figures.load_index, figures.connections, figures.msgs_per_sec, figures.latency_ms
        ))
    }
}
