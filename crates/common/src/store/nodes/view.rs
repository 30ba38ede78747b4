//! Reading nodes: the node as the API shows it (with its zone, greenhouse
//! and whether a bind is pending), and which node a uid or hardware id
//! names.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;

use super::Lifecycle;

/// A node as the API shows it (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeView {
    pub id: i64,
    pub uid: String,
    pub hardware_id: Option<String>,
    pub name: Option<String>,
    pub node_type: String,
    pub lifecycle: Lifecycle,
    pub status: String,
    pub zone_id: Option<i64>,
    pub zone_uid: Option<String>,
    pub gh_uid: Option<String>,
    pub fw_version: Option<String>,
    pub capabilities: Value,
    pub move_via: String,
    pub observed_broker_id: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub config: Option<Value>,
    pub config_reported_at: Option<DateTime<Utc>>,
    pub unbound_readings: Value,
    /// Whether a bind is pending.
    pub pending: bool,
}

/// A node's id and uid.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRef {
    pub id: i64,
    pub uid: String,
}

queries! {
    /// The nodes whose uid or hardware id is `key` (the uid's first), or every
    /// node by uid (`None`): one statement serves both.
    fn select(db, key: Option<&str>) -> Vec<NodeView> {
        fetch_all(query_as!(
            NodeView,
            r#"SELECT n.id, n.uid, n.hardware_id, n.name, n.type AS node_type,
                      n.lifecycle AS "lifecycle: Lifecycle", n.status, n.zone_id,
                      z.uid AS "zone_uid?", g.uid AS "gh_uid?", n.fw_version, n.capabilities,
                      n.move_via, n.observed_broker_id, n.observed_at, n.last_seen_at, n.config,
                      n.config_reported_at, n.unbound_readings,
                      EXISTS (SELECT 1 FROM node_binds b
                              WHERE b.node_id = n.id AND b.state = 'PENDING') AS "pending!"
                 FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
                 LEFT JOIN greenhouses g ON g.id = z.greenhouse_id
                WHERE $1::text IS NULL OR n.uid = $1 OR n.hardware_id = $1
                ORDER BY (n.uid = $1) DESC, n.uid"#,
            key
        ))
    }
}

/// The node whose uid, else hardware id, is `key`.
pub async fn find(db: impl PgExecutor<'_>, key: &str) -> Result<Option<NodeView>, sqlx::Error> {
    Ok(select(db, Some(key)).await?.into_iter().next())
}

/// Every node, by uid.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<NodeView>, sqlx::Error> {
    select(db, None).await
}

queries! {
    /// The node a message from `node` (a uid, or a hardware id in the temp
    /// namespace) belongs to.
    pub fn resolve(db, node: &str) -> Option<NodeRef> {
        fetch_optional(query_as!(
            NodeRef,
            "SELECT id, uid FROM nodes WHERE uid = $1 OR hardware_id = $1 \
             ORDER BY (uid = $1) DESC LIMIT 1",
            node
        ))
    }

    /// Whether `uid` belongs to another node than `node_id`, or is the target of
    /// another node's pending bind.
    pub fn uid_taken(db, uid: &str, node_id: i64) -> bool {
        fetch_one(query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM nodes WHERE uid = $1 AND id <> $2)
                   OR EXISTS (SELECT 1 FROM node_binds
                              WHERE node_uid = $1 AND node_id <> $2 AND state = 'PENDING')
                   AS "taken!""#,
            uid, node_id
        ))
    }
}
