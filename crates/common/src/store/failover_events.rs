//! The `failover_events` table: one row per failover, opened when a broker
//! is declared dead, counting the nodes moved off it, and closed once every
//! moved node confirmed (or at its deadline) with what became of them.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgExecutor;

/// A failover closed by [`finish_settled_or_due`].
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FinishedEvent {
    pub broker_id: String,
    /// Nodes moved off the broker, and of them confirmed on their new one.
    pub moved: i64,
    pub confirmed: i64,
    /// Nodes that cannot follow a move and still route to the dead broker.
    pub stranded: i64,
    /// From the start to the last confirmation (settled) or to the deadline.
    pub seconds: f64,
    /// Every moved node confirmed, none stranded or left behind.
    pub settled: bool,
}

queries! {
    /// Opens a failover of `broker`, unless one is open already.
    pub fn open(db, broker: &str, details: &Value) {
        execute(query!(
            "INSERT INTO failover_events (broker_id, kind, details) \
             SELECT $1, 'failover', $2 WHERE NOT EXISTS \
                 (SELECT 1 FROM failover_events \
                  WHERE broker_id = $1 AND kind = 'failover' AND finished_at IS NULL)",
            broker, details
        ))
    }

    /// Adds `moved` nodes to the open failover of `broker`, and `targets`
    /// (`{broker: count}`) to where they went.
    pub fn add_moves(db, broker: &str, moved: usize, targets: serde_json::Map<String, Value>) {
        execute(query!(
            "UPDATE failover_events SET nodes_moved = nodes_moved + $2, \
                 details = details || jsonb_build_object('moved_to', \
                     COALESCE(details->'moved_to', '{}'::jsonb) || $3) \
             WHERE broker_id = $1 AND kind = 'failover' AND finished_at IS NULL",
            broker, i32::try_from(moved).unwrap_or(i32::MAX), Value::Object(targets)
        ))
    }
}

/// Closes the open failovers that settled, or that are older than
/// `deadline`, with their counts.
pub async fn finish_settled_or_due(
    db: impl PgExecutor<'_>,
    deadline: Duration,
) -> Result<Vec<FinishedEvent>, sqlx::Error> {
    sqlx::query_as(concat!(
            "WITH open AS (SELECT f.id, f.broker_id, f.started_at, \
                     (SELECT count(*) FROM node_broker_assignments a \
                      WHERE a.previous_broker_id = f.broker_id AND a.assigned_at >= f.started_at \
                        AND a.strategy = 'failover') AS moved, \
                     (SELECT count(*) FROM node_broker_assignments a \
                      WHERE a.previous_broker_id = f.broker_id AND a.assigned_at >= f.started_at \
                        AND a.strategy = 'failover' AND a.confirmed_at IS NOT NULL) AS confirmed, \
                     (SELECT max(a.confirmed_at) FROM node_broker_assignments a \
                      WHERE a.previous_broker_id = f.broker_id AND a.assigned_at >= f.started_at \
                        AND a.strategy = 'failover') AS last_confirmed, \
                     (SELECT count(*) FROM nodes n LEFT JOIN node_broker_assignments a ON a.node_id = n.id \
                      WHERE n.move_via <> 'config_update' AND ",
            crate::route_broker_sql!(),
            " = f.broker_id) AS stranded, \
                     EXISTS (SELECT 1 FROM node_broker_assignments a JOIN nodes n ON n.id = a.node_id \
                      WHERE a.broker_id = f.broker_id AND n.move_via = 'config_update') AS left_behind \
                 FROM failover_events f WHERE f.kind = 'failover' AND f.finished_at IS NULL), \
             judged AS (SELECT *, (moved = confirmed AND stranded = 0 AND NOT left_behind) AS settled FROM open) \
             UPDATE failover_events f \
             SET finished_at = CASE WHEN j.settled THEN COALESCE(j.last_confirmed, now()) ELSE now() END, \
                 nodes_moved = GREATEST(f.nodes_moved, j.moved::int4), \
                 details = f.details || jsonb_build_object('moved', j.moved, 'confirmed', j.confirmed, \
                     'stranded', j.stranded, 'all_confirmed', j.moved = j.confirmed) \
             FROM judged j WHERE f.id = j.id \
               AND (j.settled OR j.started_at < now() - make_interval(secs => $1)) \
             RETURNING f.broker_id, j.moved, j.confirmed, j.stranded, \
                 extract(epoch FROM f.finished_at - f.started_at)::float8 AS seconds, j.settled"
        ))
    .bind(deadline.as_secs_f64())
    .fetch_all(db)
    .await
}

queries! {
    /// The latest `limit` failovers, newest first, as JSON rows.
    pub fn recent(db, limit: i64) -> Vec<Value> {
        fetch_all(query_scalar!(
            r#"SELECT to_jsonb(f) AS "row!"
               FROM (SELECT * FROM failover_events ORDER BY started_at DESC, id DESC LIMIT $1) f"#,
            limit
        ))
    }
}

// ---- Read for broker-registry's advisor (issue 15).

/// How many failovers each broker had.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct FailoverCount {
    pub broker_id: String,
    pub failovers: i64,
    pub last_started_at: chrono::DateTime<chrono::Utc>,
}

queries! {
    /// Failovers per broker started within the last `within_secs`.
    pub fn counts_since(db, within_secs: f64) -> Vec<FailoverCount> {
        fetch_all(query_as!(
            FailoverCount,
            r#"SELECT broker_id, count(*) AS "failovers!", max(started_at) AS "last_started_at!"
               FROM failover_events WHERE started_at > now() - make_interval(secs => $1)
               GROUP BY broker_id ORDER BY broker_id"#,
            within_secs
        ))
    }
}
