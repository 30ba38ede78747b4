//! What status, lwt, heartbeat, event, error and hello messages change:
//! `nodes`, the `node_offline` alert, `zone_events`, and unassigned nodes
//! registered from a hello.
//!
//! A change of a node's status (not every repeated status) adds a zone event,
//! `NODE_OFFLINE` or `NODE_ONLINE`; OFFLINE raises the alert (a no-op when it
//! is already active) and ONLINE resolves it.
//!
//! Each kind is written for a whole batch in a statement or a few, not per
//! message: a broker failover or a restart brings a status from every node
//! at once, and telemetry must not wait behind them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::payloads::{Heartbeat, NodeError, NodeHello, NodeState};
use common::zone_events::ZoneEvent;
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
    state.as_str()
}

/// ONLINE or OFFLINE from a status message (`source` = `status`) or the
/// broker's last will (`source` = `lwt`).
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub target: Target<'a>,
    pub state: NodeState,
    pub source: &'static str,
    pub at: DateTime<Utc>,
}

/// Applies a batch's status changes, in their order, with a few statements
/// whatever their number (a broker failover brings thousands at once).
///
/// Every change of a node's status becomes a `NODE_ONLINE`/`NODE_OFFLINE`
/// zone event (pushed to `events`); the node keeps its last status, which
/// decides the alert: OFFLINE raises `node_offline` (a no-op when it is
/// active), ONLINE resolves it. ONLINE also counts as the node being seen.
pub async fn apply_statuses(
    conn: &mut PgConnection,
    changes: &[StatusChange<'_>],
    events: &mut Vec<ZoneEvent>,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = changes.iter().map(|c| c.target.node_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Locked in id order, so concurrent writers cannot deadlock.
    let old: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, status FROM nodes WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut current: HashMap<i64, &'static str> = HashMap::new();
    for (id, status) in &old {
        current.insert(*id, state_label(status));
    }
    // Per node: its last change and the latest time it was seen ONLINE.
    let mut last: HashMap<i64, (StatusChange<'_>, Option<DateTime<Utc>>)> = HashMap::new();
    for change in changes {
        let id = change.target.node_id;
        let Some(now) = current.get_mut(&id) else {
            continue; // deleted meanwhile
        };
        let new = state_str(change.state);
        if *now != new {
            events.push(ZoneEvent {
                zone_id: change.target.zone_id,
                kind: match change.state {
                    NodeState::Online => "NODE_ONLINE",
                    NodeState::Offline => "NODE_OFFLINE",
                    NodeState::Restarting => "NODE_RESTARTING",
                }
                .into(),
                payload: json!({ "node_uid": change.target.node_uid, "source": change.source }),
                at: Some(change.at),
            });
            *now = new;
        }
        let seen = (change.state == NodeState::Online).then_some(change.at);
        last.entry(id)
            .and_modify(|(kept, kept_seen)| {
                *kept = *change;
                *kept_seen = (*kept_seen).max(seen);
            })
            .or_insert((*change, seen));
    }
    let mut rows: Vec<&(StatusChange<'_>, Option<DateTime<Utc>>)> = last.values().collect();
    rows.sort_by_key(|(c, _)| c.target.node_id);
    let id: Vec<i64> = rows.iter().map(|(c, _)| c.target.node_id).collect();
    let status: Vec<&str> = rows.iter().map(|(c, _)| state_str(c.state)).collect();
    let seen: Vec<Option<DateTime<Utc>>> = rows.iter().map(|(_, s)| *s).collect();
    sqlx::query(
        "UPDATE nodes n
            SET status = u.status,
                last_seen_at = CASE WHEN u.seen IS NULL THEN n.last_seen_at
                                    ELSE GREATEST(n.last_seen_at, u.seen) END,
                updated_at = now()
           FROM UNNEST($1::int8[], $2::text[], $3::timestamptz[]) AS u(id, status, seen)
          WHERE n.id = u.id",
    )
    .bind(&id)
    .bind(&status)
    .bind(&seen)
    .execute(&mut *conn)
    .await?;

    let (online, offline): (Vec<&StatusChange<'_>>, Vec<&StatusChange<'_>>) = rows
        .iter()
        .map(|(c, _)| c)
        .partition(|c| c.state == NodeState::Online);
    if !online.is_empty() {
        let ids: Vec<i64> = online.iter().map(|c| c.target.node_id).collect();
        sqlx::query(
            "UPDATE alerts SET status = 'RESOLVED', resolved_at = now(), updated_at = now()
              WHERE type = $1 AND node_id = ANY($2) AND status = 'ACTIVE'",
        )
        .bind(NODE_OFFLINE_ALERT)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    }
    if !offline.is_empty() {
        let zone: Vec<Option<i64>> = offline.iter().map(|c| c.target.zone_id).collect();
        let node: Vec<i64> = offline.iter().map(|c| c.target.node_id).collect();
        let details: Vec<Value> = offline
            .iter()
            .map(|c| json!({ "node_uid": c.target.node_uid, "source": c.source }))
            .collect();
        sqlx::query(
            "INSERT INTO alerts (type, zone_id, node_id, details)
             SELECT $1, * FROM UNNEST($2::int8[], $3::int8[], $4::jsonb[])
             ON CONFLICT DO NOTHING",
        )
        .bind(NODE_OFFLINE_ALERT)
        .bind(&zone)
        .bind(&node)
        .bind(&details)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The static label of a status read from `nodes.status`.
fn state_label(status: &str) -> &'static str {
    match status {
        "ONLINE" => "ONLINE",
        "OFFLINE" => "OFFLINE",
        "RESTARTING" => "RESTARTING",
        _ => "UNKNOWN",
    }
}

/// Records a batch's heartbeats (uptime, free heap, rssi, and when), the
/// latest of each node, in one statement.
pub async fn heartbeats(
    conn: &mut PgConnection,
    beats: &[(i64, &Heartbeat, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    let mut latest: HashMap<i64, (&Heartbeat, DateTime<Utc>)> = HashMap::new();
    for (node_id, h, at) in beats {
        latest
            .entry(*node_id)
            .and_modify(|kept| {
                if *at >= kept.1 {
                    *kept = (h, *at);
                }
            })
            .or_insert((h, *at));
    }
    if latest.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(i64, &Heartbeat, DateTime<Utc>)> = latest
        .into_iter()
        .map(|(id, (h, at))| (id, h, at))
        .collect();
    rows.sort_by_key(|(id, _, _)| *id);
    let id: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.2).collect();
    let uptime: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.1.uptime).unwrap_or(i64::MAX))
        .collect();
    let heap: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.1.free_heap).unwrap_or(i64::MAX))
        .collect();
    let rssi: Vec<Option<i16>> = rows
        .iter()
        .map(|r| r.1.rssi.and_then(|v| i16::try_from(v).ok()))
        .collect();
    sqlx::query(
        "UPDATE nodes n
            SET last_heartbeat_at = GREATEST(n.last_heartbeat_at, u.at),
                last_seen_at = GREATEST(n.last_seen_at, u.at),
                uptime_seconds = u.uptime, free_heap_bytes = u.heap,
                rssi = COALESCE(u.rssi, n.rssi), updated_at = now()
           FROM UNNEST($1::int8[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int2[])
                AS u(id, at, uptime, heap, rssi)
          WHERE n.id = u.id",
    )
    .bind(&id)
    .bind(&at)
    .bind(&uptime)
    .bind(&heap)
    .bind(&rssi)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A node's own error report, kept as a `NODE_ERROR` zone event.
pub fn node_error(target: Target<'_>, e: &NodeError, at: DateTime<Utc>) -> ZoneEvent {
    let mut payload = serde_json::to_value(e).unwrap_or_default();
    payload["node_uid"] = json!(target.node_uid);
    ZoneEvent {
        zone_id: target.zone_id,
        kind: "NODE_ERROR".into(),
        payload,
        at: Some(at),
    }
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
