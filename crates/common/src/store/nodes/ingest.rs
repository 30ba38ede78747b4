//! The `nodes` table as history-logger writes it: each node's placement,
//! status, where it is observed and its heartbeat figures.
//!
//! history-logger: where a batch's nodes are placed ([`placements`], with
//! their zone, greenhouse and `node_channels`), their rows locked for a batch
//! ([`lock_states`]), the states a batch leaves ([`update_states`]) and the
//! heartbeats it carried ([`record_heartbeats`]). The two updates are bulk
//! `UNNEST` statements for a batch of any size: runtime queries.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

proto::text_enum! {
    /// `nodes.status`, mapped to its SQL text here only.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum NodeStatus {
        Online => "ONLINE",
        Offline => "OFFLINE",
        Restarting => "RESTARTING",
        Unknown => "UNKNOWN",
    }
}

impl NodeStatus {
    /// A `nodes.status` value; anything else is UNKNOWN.
    pub fn parse(s: &str) -> NodeStatus {
        NodeStatus::from_text(s).unwrap_or(NodeStatus::Unknown)
    }
}

/// A node as the database places it: its zone and greenhouse, and its
/// channels with their metric (`None` for an actuator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub uid: String,
    pub id: i64,
    pub zone_id: Option<i64>,
    pub zone_uid: Option<String>,
    pub greenhouse_uid: Option<String>,
    pub channels: Vec<String>,
    /// `metrics[i]` is the metric of `channels[i]`.
    pub metrics: Vec<Option<String>>,
}

queries! {
    /// The placements of the nodes of `uids` (unknown uids are left out), in
    /// one statement.
    pub fn placements(db, uids: &[String]) -> Vec<Placement> {
        fetch_all(query_as!(
            Placement,
            r#"SELECT n.uid, n.id, n.zone_id, z.uid AS "zone_uid?", g.uid AS "greenhouse_uid?",
                      COALESCE(array_agg(c.channel) FILTER (WHERE c.id IS NOT NULL), '{}')
                          AS "channels!: Vec<String>",
                      COALESCE(array_agg(c.metric_type) FILTER (WHERE c.id IS NOT NULL), '{}')
                          AS "metrics!: Vec<Option<String>>"
                 FROM nodes n
                 LEFT JOIN zones z ON z.id = n.zone_id
                 LEFT JOIN greenhouses g ON g.id = z.greenhouse_id
                 LEFT JOIN node_channels c ON c.node_id = n.id
                WHERE n.uid = ANY($1)
                GROUP BY n.id, z.uid, g.uid"#,
            uids
        ))
    }
}

/// A node's row as read under lock: what a batch's status rules start from.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub id: i64,
    pub status: NodeStatus,
    pub observed_broker: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
}

/// Locks the rows of `ids` (sorted), in id order, in one statement, with
/// `FOR NO KEY UPDATE` (which telemetry's foreign-key checks do not wait
/// for), so concurrent writers cannot deadlock on `nodes`.
pub async fn lock_states(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<NodeState>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        "SELECT id, status, observed_broker_id, observed_at FROM nodes
          WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        ids
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| NodeState {
            id: r.id,
            status: NodeStatus::parse(&r.status),
            observed_broker: r.observed_broker_id,
            observed_at: r.observed_at,
        })
        .collect())
}

/// A node's row after a batch, when it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    pub node_id: i64,
    pub status: NodeStatus,
    pub observed_broker: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
    /// The latest ONLINE, for `last_seen_at`.
    pub seen: Option<DateTime<Utc>>,
}

/// Writes the changed rows in one statement. The observation is kept only
/// for a broker of the `brokers` table (the column references it).
pub async fn update_states(
    conn: &mut PgConnection,
    rows: &[StateUpdate],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let id: Vec<i64> = rows.iter().map(|r| r.node_id).collect();
    let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let broker: Vec<Option<&str>> = rows.iter().map(|r| r.observed_broker.as_deref()).collect();
    let observed: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.observed_at).collect();
    let seen: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.seen).collect();
    sqlx::query(
        "UPDATE nodes n
            SET status = u.status,
                observed_broker_id = COALESCE(b.id, n.observed_broker_id),
                observed_at = CASE WHEN b.id IS NULL THEN n.observed_at
                                   WHEN b.id IS DISTINCT FROM n.observed_broker_id THEN u.observed
                                   ELSE GREATEST(n.observed_at, u.observed) END,
                last_seen_at = CASE WHEN u.seen IS NULL THEN n.last_seen_at
                                    ELSE GREATEST(n.last_seen_at, u.seen) END,
                updated_at = now()
           FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
                AS u(id, status, broker, observed, seen)
           LEFT JOIN brokers b ON b.id = u.broker
          WHERE n.id = u.id",
    )
    .bind(&id)
    .bind(&status)
    .bind(&broker)
    .bind(&observed)
    .bind(&seen)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A node's latest heartbeat of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRow {
    pub node_id: i64,
    pub at: DateTime<Utc>,
    pub uptime_seconds: i64,
    pub free_heap_bytes: i64,
    pub rssi: Option<i16>,
    pub fw_version: Option<String>,
}

/// Records heartbeats (one per node) in one statement: the figures, and
/// `last_heartbeat_at` / `last_seen_at` moved forward. The rows are already
/// locked by [`lock_states`] when a batch writes them.
pub async fn record_heartbeats(
    conn: &mut PgConnection,
    rows: &[HeartbeatRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let id: Vec<i64> = rows.iter().map(|r| r.node_id).collect();
    let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.at).collect();
    let uptime: Vec<i64> = rows.iter().map(|r| r.uptime_seconds).collect();
    let heap: Vec<i64> = rows.iter().map(|r| r.free_heap_bytes).collect();
    let rssi: Vec<Option<i16>> = rows.iter().map(|r| r.rssi).collect();
    let fw: Vec<Option<&str>> = rows.iter().map(|r| r.fw_version.as_deref()).collect();
    sqlx::query(
        "UPDATE nodes n
            SET last_heartbeat_at = GREATEST(n.last_heartbeat_at, u.at),
                last_seen_at = GREATEST(n.last_seen_at, u.at),
                uptime_seconds = u.uptime, free_heap_bytes = u.heap,
                rssi = COALESCE(u.rssi, n.rssi), fw_version = COALESCE(u.fw, n.fw_version),
                updated_at = now()
           FROM UNNEST($1::int8[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int2[], $6::text[])
                AS u(id, at, uptime, heap, rssi, fw)
          WHERE n.id = u.id",
    )
    .bind(&id)
    .bind(&at)
    .bind(&uptime)
    .bind(&heap)
    .bind(&rssi)
    .bind(&fw)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
