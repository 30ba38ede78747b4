//! The `node_broker_assignments` table: the broker each node is assigned
//! to, the move that put it there and whether the node confirmed it.
//! Written by the move protocol (`placement::assignments`,
//! `placement::observed`) for broker-registry and failover; device-registry
//! confirms a move when a config_report arrives from the new broker; node-sim
//! forgets its nodes' rows when it seeds them; failover reads which brokers
//! carry confirmed nodes.

use crate::placement::balance::{Move, MoveVia};
use serde::Serialize;
use sqlx::PgExecutor;

queries! {
    /// Confirms a pending move of the node to `broker_id` (its config_report
    /// arrived there). True when one was confirmed.
    pub fn confirm_by_report(db, node_id: i64, broker_id: &str) -> bool {
        one_row(query!(
            "UPDATE node_broker_assignments SET confirmed_at = now() \
              WHERE node_id = $1 AND broker_id = $2 AND confirmed_at IS NULL",
            node_id, broker_id
        ))
    }
}

/// One node's row, with the node's uid and what `nodes` says of its moves.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Assignment {
    pub node_id: i64,
    pub node_uid: String,
    pub broker_id: String,
    /// Why it is there: `static`, `dynamic`, `priority` (a plan), `manual`,
    /// `failover` or `observed` (where the node was seen).
    pub strategy: String,
    pub assigned_at: chrono::DateTime<chrono::Utc>,
    pub confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub previous_broker_id: Option<String>,
    pub config_ts: i64,
    /// How the node can be moved.
    pub move_via: MoveVia,
    /// The broker its uplink last arrived on, and when.
    pub observed_broker_id: Option<String>,
    pub observed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The assignments of the nodes `ids` (every one for `None`), by node id.
pub async fn select(
    db: impl PgExecutor<'_>,
    ids: Option<&[i64]>,
) -> Result<Vec<Assignment>, sqlx::Error> {
    filtered(db, ids, None, false).await
}

/// The assignments to `broker_id` (every one for `None`), by node uid: the
/// API's list.
pub async fn by_uid(
    db: impl PgExecutor<'_>,
    broker_id: Option<&str>,
) -> Result<Vec<Assignment>, sqlx::Error> {
    filtered(db, None, broker_id, true).await
}

queries! {
    /// The assignments of the nodes `ids` to `broker_id` (`None`: any), by node
    /// uid or by node id: one statement serves both lists.
    fn filtered(db, ids: Option<&[i64]>, broker_id: Option<&str>, by_uid: bool) -> Vec<Assignment> {
        fetch_all(query_as!(
            Assignment,
            r#"SELECT a.node_id, n.uid AS node_uid, a.broker_id, a.strategy, a.assigned_at,
                      a.confirmed_at, a.previous_broker_id, a.config_ts,
                      n.move_via AS "move_via: _", n.observed_broker_id, n.observed_at
               FROM node_broker_assignments a JOIN nodes n ON n.id = a.node_id
               WHERE ($1::int8[] IS NULL OR a.node_id = ANY($1))
                 AND ($2::text IS NULL OR a.broker_id = $2)
               ORDER BY CASE WHEN $3 THEN n.uid END, a.node_id"#,
            ids, broker_id, by_uid
        ))
    }
}

/// Writes `moves` with `strategy` as the reason, each with `confirmed_at`
/// NULL and a `config_ts` above the node's previous one; a move whose node
/// is no longer on its `from` broker is skipped, and a move from `None` only
/// creates a missing row (of an existing node). Returns the nodes written.
pub async fn record_moves(
    db: impl PgExecutor<'_>,
    moves: &[Move],
    strategy: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    let nodes: Vec<i64> = moves.iter().map(|m| m.node_id).collect();
    let from: Vec<Option<&str>> = moves.iter().map(|m| m.from.as_deref()).collect();
    let to: Vec<String> = moves.iter().map(|m| m.to.clone()).collect();
    sqlx::query_scalar!(
        r#"WITH m AS (SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[]) AS m(node_id, from_id, to_id)),
           upd AS (UPDATE node_broker_assignments a
                   SET broker_id = m.to_id, previous_broker_id = a.broker_id, strategy = $4,
                       assigned_at = now(), confirmed_at = NULL,
                       config_ts = GREATEST(floor(extract(epoch FROM now()))::int8, a.config_ts + 1)
                   FROM m WHERE a.node_id = m.node_id AND a.broker_id = m.from_id AND m.to_id <> m.from_id
                   RETURNING a.node_id),
           ins AS (INSERT INTO node_broker_assignments (node_id, broker_id, strategy, config_ts)
                   SELECT m.node_id, m.to_id, $4, floor(extract(epoch FROM now()))::int8
                   FROM m JOIN nodes n ON n.id = m.node_id WHERE m.from_id IS NULL
                   ON CONFLICT (node_id) DO NOTHING RETURNING node_id)
           SELECT node_id AS "node_id!" FROM upd UNION ALL SELECT node_id FROM ins"#,
        &nodes[..],
        // Text with NULLs (a new node comes from nowhere): no checked type.
        &from[..] as _,
        &to[..],
        strategy
    )
    .fetch_all(db)
    .await
}

queries! {
    /// Marks the move of `node_uid` to `broker_id` confirmed if it is not yet,
    /// given a status that arrived there `live`, or replayed with `ts` no older
    /// than the config. True when this confirmed it.
    pub fn confirm(db, node_uid: &str, broker_id: &str, live: bool, ts: i64) -> bool {
        one_row(query!(
            "UPDATE node_broker_assignments a SET confirmed_at = now() FROM nodes n \
             WHERE n.uid = $1 AND a.node_id = n.id AND a.broker_id = $2 \
               AND a.confirmed_at IS NULL AND ($3 OR $4 >= a.config_ts)",
            node_uid, broker_id, live, ts
        ))
    }

    /// Confirms every move whose node was observed on its new broker since the
    /// move was recorded; returns how many.
    pub fn confirm_observed(db) -> u64 {
        rows_affected(query!(
            "UPDATE node_broker_assignments a SET confirmed_at = now() FROM nodes n \
             WHERE n.id = a.node_id AND a.confirmed_at IS NULL \
               AND n.observed_broker_id = a.broker_id AND n.observed_at >= a.assigned_at"
        ))
    }

    /// Gives each observed node that cannot follow a `config/update` and has no
    /// assignment one, confirmed, where it is observed; returns how many.
    pub fn adopt_observed(db) -> u64 {
        rows_affected(query!(
            "INSERT INTO node_broker_assignments \
                 (node_id, broker_id, strategy, config_ts, confirmed_at) \
             SELECT n.id, n.observed_broker_id, 'observed', \
                    floor(extract(epoch FROM now()))::int8, now() \
             FROM nodes n WHERE n.move_via <> 'config_update' AND n.observed_broker_id IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM node_broker_assignments a WHERE a.node_id = n.id) \
             ON CONFLICT (node_id) DO NOTHING"
        ))
    }

    /// Moves the assignment of each node that cannot follow a `config/update`
    /// to where it is observed, when that is elsewhere and it was seen there
    /// after its move was confirmed, or its move is unconfirmed after
    /// `move_timeout_secs`; returns how many.
    pub fn follow_observed(db, move_timeout_secs: f64) -> u64 {
        rows_affected(query!(
            "UPDATE node_broker_assignments a \
             SET previous_broker_id = a.broker_id, broker_id = n.observed_broker_id, \
                 strategy = 'observed', assigned_at = now(), confirmed_at = now(), \
                 config_ts = GREATEST(floor(extract(epoch FROM now()))::int8, a.config_ts + 1) \
             FROM nodes n \
             WHERE n.id = a.node_id AND n.move_via <> 'config_update' \
               AND n.observed_broker_id IS NOT NULL AND n.observed_broker_id <> a.broker_id \
               AND ((a.confirmed_at IS NOT NULL AND n.observed_at > a.confirmed_at) \
                    OR (a.confirmed_at IS NULL \
                        AND a.assigned_at < now() - make_interval(secs => $1)))",
            move_timeout_secs
        ))
    }

    /// Brokers with confirmed nodes on them.
    pub fn brokers_with_confirmed(db) -> Vec<String> {
        fetch_all(query_scalar!(
            "SELECT DISTINCT broker_id FROM node_broker_assignments WHERE confirmed_at IS NOT NULL"
        ))
    }

    /// Deletes the assignments of the nodes `uids`.
    pub fn forget(db, uids: &[String]) -> u64 {
        rows_affected(query!(
            "DELETE FROM node_broker_assignments a USING nodes n \
             WHERE a.node_id = n.id AND n.uid = ANY($1)",
            uids
        ))
    }
}
