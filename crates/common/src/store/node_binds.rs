//! The `node_binds` table: binds of nodes to zones, PENDING until the node's
//! `config_report` from the target namespace completes them (DONE), their
//! TTL runs out (EXPIRED), or another bind, an unbind, a decommission or a
//! failed publish ends them (CANCELLED). At most one is pending per node.
//! Its status enum, [`BindState`], is mapped to its SQL text here. Used by
//! device-registry (its `binds` module runs the transactions).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;

/// `node_binds.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BindState {
    /// Its config is out (or going out); waiting for the node's report.
    Pending,
    /// The node reported its config from the target namespace.
    Done,
    /// No report in time.
    Expired,
    /// Replaced, unbound, decommissioned, or its config could not be published.
    Cancelled,
}

/// A bind with its target zone and greenhouse.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Bind {
    pub id: i64,
    pub node_id: i64,
    pub zone_id: i64,
    pub zone_uid: String,
    pub gh_uid: String,
    pub node_uid: String,
    pub name: Option<String>,
    pub secret: String,
    /// The NodeConfig pushed, with its secret.
    pub config: Value,
    pub config_topic: String,
    pub broker_id: Option<String>,
    pub state: BindState,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

queries! {
    /// The latest bind of node `node_id`, else the unexpired ones targeting
    /// `node_uid`; only a pending one when `pending`. One statement serves the
    /// three lookups below.
    fn select_latest(
        db, node_id: Option<i64>, node_uid: Option<&str>, pending: bool
    ) -> Option<Bind> {
        fetch_optional(query_as!(
            Bind,
            r#"SELECT b.id, b.node_id, b.zone_id, z.uid AS zone_uid, g.uid AS gh_uid, b.node_uid,
                      b.name, b.secret, b.config, b.config_topic, b.broker_id,
                      b.state AS "state: BindState", b.requested_at, b.expires_at, b.finished_at
                 FROM node_binds b JOIN zones z ON z.id = b.zone_id
                 JOIN greenhouses g ON g.id = z.greenhouse_id
                WHERE (b.node_id = $1 OR (b.node_uid = $2 AND b.expires_at > now()))
                  AND (NOT $3 OR b.state = 'PENDING')
                ORDER BY b.requested_at DESC, b.id DESC LIMIT 1"#,
            node_id, node_uid, pending
        ))
    }
}

/// The node's latest bind, whatever its state.
pub async fn latest(db: impl PgExecutor<'_>, node_id: i64) -> Result<Option<Bind>, sqlx::Error> {
    select_latest(db, Some(node_id), None, false).await
}

/// The node's pending bind.
pub async fn pending(db: impl PgExecutor<'_>, node_id: i64) -> Result<Option<Bind>, sqlx::Error> {
    select_latest(db, Some(node_id), None, true).await
}

/// The pending, unexpired bind whose target uid is `node_uid`.
pub async fn pending_for_uid(
    db: impl PgExecutor<'_>,
    node_uid: &str,
) -> Result<Option<Bind>, sqlx::Error> {
    select_latest(db, None, Some(node_uid), true).await
}

/// What a new bind holds.
#[derive(Debug, Clone)]
pub struct NewBind<'a> {
    pub node_id: i64,
    pub zone_id: i64,
    pub node_uid: &'a str,
    pub name: Option<&'a str>,
    pub secret: &'a str,
    pub config: &'a Value,
    pub config_topic: &'a str,
    /// The broker it is pushed through (kept when it is in `brokers`).
    pub broker_id: Option<&'a str>,
    pub ttl: Duration,
}

queries! {
    /// Inserts a pending bind (the node must have none); returns its id.
    pub fn insert(db, new: &NewBind<'_>) -> i64 {
        fetch_one(query_scalar!(
            "INSERT INTO node_binds \
                 (node_id, zone_id, node_uid, name, secret, config, config_topic, \
                  broker_id, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT id FROM brokers WHERE id = $8), \
                     now() + make_interval(secs => $9)) RETURNING id",
            new.node_id, new.zone_id, new.node_uid, new.name, new.secret, new.config,
            new.config_topic, new.broker_id, new.ttl.as_secs_f64()
        ))
    }

    /// Whether bind `id` is pending.
    pub fn is_pending(db, id: i64) -> bool {
        fetch_one(query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM node_binds WHERE id = $1 AND state = 'PENDING')
                   AS "pending!""#,
            id
        ))
    }

    /// A retry of pending bind `id`: its TTL starts again.
    pub fn extend(db, id: i64, ttl: Duration) {
        execute(query!(
            "UPDATE node_binds SET expires_at = now() + make_interval(secs => $2) \
             WHERE id = $1 AND state = 'PENDING'",
            id, ttl.as_secs_f64()
        ))
    }

    /// Cancels the node's pending bind, if any (there is at most one: a
    /// unique index); true when there was one.
    pub fn cancel_pending(db, node_id: i64) -> bool {
        one_row(query!(
            "UPDATE node_binds SET state = 'CANCELLED', finished_at = now() \
             WHERE node_id = $1 AND state = 'PENDING'",
            node_id
        ))
    }

    /// Cancels bind `id` if it is pending (its config could not be published).
    pub fn cancel(db, id: i64) {
        execute(query!(
            "UPDATE node_binds SET state = 'CANCELLED', finished_at = now() \
             WHERE id = $1 AND state = 'PENDING'",
            id
        ))
    }

    /// Marks bind `id` DONE if it is pending and unexpired; true when it was.
    pub fn mark_done(db, id: i64) -> bool {
        one_row(query!(
            "UPDATE node_binds SET state = 'DONE', finished_at = now() \
              WHERE id = $1 AND state = 'PENDING' AND expires_at > now()",
            id
        ))
    }
}

/// A bind marked EXPIRED by [`expire`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Expired {
    /// Its target uid.
    pub node_uid: String,
    pub node_id: i64,
}

queries! {
    /// Marks every pending bind past its TTL EXPIRED.
    pub fn expire(db) -> Vec<Expired> {
        fetch_all(query_as!(
            Expired,
            "UPDATE node_binds SET state = 'EXPIRED', finished_at = now() \
              WHERE state = 'PENDING' AND expires_at <= now() RETURNING node_uid, node_id"
        ))
    }

    /// How many binds are pending.
    pub fn pending_count(db) -> i64 {
        fetch_one(query_scalar!(
            r#"SELECT count(*) AS "count!" FROM node_binds WHERE state = 'PENDING'"#
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_show_as_their_sql_text() {
        for (state, text) in [
            (BindState::Pending, "PENDING"),
            (BindState::Done, "DONE"),
            (BindState::Expired, "EXPIRED"),
            (BindState::Cancelled, "CANCELLED"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), text);
        }
    }
}
