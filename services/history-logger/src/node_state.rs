//! What status, lwt, heartbeat, event, error and hello messages change:
//! `nodes`, the `node_offline` alert, `zone_events`, and unassigned nodes
//! registered from a hello.
//!
//! A change of a node's status (not every repeated status) adds a zone event,
//! `NODE_OFFLINE` or `NODE_ONLINE`; OFFLINE raises the alert (a no-op when it
//! is already active) and ONLINE resolves it.

use chrono::{DateTime, Utc};
use common::payloads::{Heartbeat, NodeError, NodeHello, NodeState};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::uplink::hello_uid;

/// The alert type a vanished node raises.
pub const NODE_OFFLINE_ALERT: &str = "node_offline";

/// A node as the message names it, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub node_id: i64,
    pub zone_id: Option<i64>,
    pub node_uid: &'a str,
}

fn state_str(state: NodeState) -> &'static str {
    match state {
        NodeState::Online => "ONLINE",
        NodeState::Offline => "OFFLINE",
    }
}

/// Applies ONLINE or OFFLINE from a status message (`source` = `status`) or
/// the broker's last will (`source` = `lwt`).
pub async fn set_status(
    conn: &mut PgConnection,
    target: Target<'_>,
    state: NodeState,
    source: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let new = state_str(state);
    let online = state == NodeState::Online;
    let old: Option<String> = sqlx::query_scalar(
        "WITH old AS (SELECT id, status FROM nodes WHERE id = $1 FOR UPDATE)
         UPDATE nodes n
            SET status = $2,
                last_seen_at = CASE WHEN $3 THEN GREATEST(n.last_seen_at, $4) ELSE n.last_seen_at END,
                updated_at = now()
           FROM old WHERE n.id = old.id
         RETURNING old.status",
    )
    .bind(target.node_id)
    .bind(new)
    .bind(online)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let details = json!({ "node_uid": target.node_uid, "source": source });
    if online {
        sqlx::query(
            "UPDATE alerts SET status = 'RESOLVED', resolved_at = now(), updated_at = now()
              WHERE type = $1 AND node_id = $2 AND status = 'ACTIVE'",
        )
        .bind(NODE_OFFLINE_ALERT)
        .bind(target.node_id)
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO alerts (type, zone_id, node_id, details) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(NODE_OFFLINE_ALERT)
        .bind(target.zone_id)
        .bind(target.node_id)
        .bind(&details)
        .execute(&mut *conn)
        .await?;
    }
    if old.as_deref().is_some_and(|o| o != new) {
        let kind = if online {
            "NODE_ONLINE"
        } else {
            "NODE_OFFLINE"
        };
        zone_event(conn, target.zone_id, kind, &details, at).await?;
    }
    Ok(())
}

/// Records a heartbeat: uptime, free heap, rssi, and when.
pub async fn heartbeat(
    conn: &mut PgConnection,
    node_id: i64,
    h: &Heartbeat,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE nodes
            SET last_heartbeat_at = GREATEST(last_heartbeat_at, $2),
                last_seen_at = GREATEST(last_seen_at, $2),
                uptime_seconds = $3, free_heap_bytes = $4, rssi = COALESCE($5, rssi),
                updated_at = now()
          WHERE id = $1",
    )
    .bind(node_id)
    .bind(at)
    .bind(i64::try_from(h.uptime).unwrap_or(i64::MAX))
    .bind(i64::try_from(h.free_heap).unwrap_or(i64::MAX))
    .bind(h.rssi.and_then(|r| i16::try_from(r).ok()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds a zone event.
pub async fn zone_event(
    conn: &mut PgConnection,
    zone_id: Option<i64>,
    kind: &str,
    payload: &Value,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO zone_events (zone_id, type, payload_json, server_ts) VALUES ($1, $2, $3, $4)",
    )
    .bind(zone_id)
    .bind(kind)
    .bind(payload)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A node's own error report, kept as a `NODE_ERROR` zone event.
pub async fn node_error(
    conn: &mut PgConnection,
    target: Target<'_>,
    e: &NodeError,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut payload = serde_json::to_value(e).unwrap_or_default();
    payload["node_uid"] = json!(target.node_uid);
    zone_event(conn, target.zone_id, "NODE_ERROR", &payload, at).await
}

/// Registers the node of a hello when neither its uid nor its hardware id is
/// known: unassigned (no zone), for an operator to place. Returns whether a
/// node was added.
pub async fn register(conn: &mut PgConnection, hello: &NodeHello) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO nodes (uid, zone_id, hardware_id, type, fw_version)
         SELECT $1, NULL, $2, COALESCE($3, 'unknown'), $4
          WHERE NOT EXISTS (SELECT 1 FROM nodes WHERE uid = $1 OR hardware_id = $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(hello_uid(hello))
    .bind(&hello.hardware_id)
    .bind(&hello.node_type)
    .bind(&hello.fw_version)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
