//! The SQL side of [`crate::node_state`]: locking a batch's node rows, writing
//! a [`Plan`] (rows, alerts), heartbeats, and node errors as zone events.
//!
//! Every row a batch changes is locked first, in id order, in one statement
//! ([`lock`]), with `FOR NO KEY UPDATE` (which telemetry's foreign-key checks
//! do not wait for), so concurrent writers cannot deadlock on `nodes`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::store::alerts;
use common::store::zone_events::ZoneEvent;
use proto::payloads::{Heartbeat, NodeError};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::node_state::{Known, NODE_OFFLINE_ALERT, NodeStatus, Plan, Target};

/// Locks the rows of `ids` (sorted), in id order, and reads what [`crate::node_state::plan`]
/// needs. One statement for the whole batch.
pub async fn lock(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<HashMap<i64, Known>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    type Locked = (i64, String, Option<String>, Option<DateTime<Utc>>);
    let rows: Vec<Locked> = sqlx::query_as(
        "SELECT id, status, observed_broker_id, observed_at FROM nodes
          WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, status, observed_broker, observed_at)| {
            (
                id,
                Known {
                    status: NodeStatus::parse(&status),
                    observed_broker,
                    observed_at,
                },
            )
        })
        .collect())
}

/// Writes a plan: the changed rows in one statement, then the alerts. The
/// observation is kept only for a broker of the `brokers` table (the column
/// references it).
pub async fn apply(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<(), sqlx::Error> {
    if !plan.rows.is_empty() {
        let id: Vec<i64> = plan.rows.iter().map(|r| r.node_id).collect();
        let status: Vec<&str> = plan.rows.iter().map(|r| r.status.as_str()).collect();
        let broker: Vec<Option<&str>> = plan
            .rows
            .iter()
            .map(|r| r.observed_broker.as_deref())
            .collect();
        let observed: Vec<Option<DateTime<Utc>>> =
            plan.rows.iter().map(|r| r.observed_at).collect();
        let seen: Vec<Option<DateTime<Utc>>> = plan.rows.iter().map(|r| r.seen).collect();
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
    }
    alerts::resolve_for_nodes(&mut *conn, NODE_OFFLINE_ALERT, &plan.resolve).await?;
    let raise: Vec<(Option<i64>, i64, Value)> = plan
        .raise
        .iter()
        .map(|(t, source)| {
            let details = json!({ "node_uid": t.node_uid, "source": source });
            (t.zone_id, t.node_id, details)
        })
        .collect();
    alerts::raise_for_nodes(&mut *conn, NODE_OFFLINE_ALERT, &raise).await?;
    Ok(())
}

/// Records a batch's heartbeats (uptime, free heap, rssi, firmware version,
/// and when), the latest of each node, in one statement. The rows are
/// already locked by [`lock`].
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
    let fw: Vec<Option<&str>> = rows.iter().map(|r| r.1.fw_version.as_deref()).collect();
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

/// A node's own error report, kept as a `NODE_ERROR` zone event with all it
/// said (its `ts` in milliseconds and its `details` included).
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
