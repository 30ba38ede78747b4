//! The registry's view of `nodes`: registering nodes from what they send,
//! the readings of unbound nodes, the reported config and its channels, and
//! the lifecycle changes (bound, unbound, decommissioned). Only this module
//! and [`crate::binds`] name these columns in SQL.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

use crate::channels::{ChannelRow, plan_sync};
use crate::lifecycle::{self, Lifecycle, NodeState};
use proto::payloads::NodeConfigChannel;

/// Sets the observed broker (`$OBS`, when it is in `brokers`) and its time.
fn observed(param: u32) -> String {
    format!(
        "observed_broker_id = COALESCE((SELECT id FROM brokers WHERE id = ${param}), observed_broker_id), \
         observed_at = CASE WHEN EXISTS (SELECT 1 FROM brokers WHERE id = ${param}) THEN now() ELSE observed_at END"
    )
}

/// A node as the API shows it (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub id: i64,
    pub uid: String,
    pub hardware_id: Option<String>,
    pub name: Option<String>,
    pub node_type: String,
    pub lifecycle: String,
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

impl NodeRow {
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.parse().unwrap_or(Lifecycle::Registered)
    }

    pub fn state(&self) -> NodeState {
        NodeState::of(self.lifecycle(), self.zone_id.is_some(), self.pending)
    }
}

const NODE_SELECT: &str = "SELECT n.id, n.uid, n.hardware_id, n.name, n.type AS node_type, n.lifecycle, n.status, \
        n.zone_id, z.uid AS zone_uid, g.uid AS gh_uid, n.fw_version, n.capabilities, n.move_via, \
        n.observed_broker_id, n.observed_at, n.last_seen_at, n.config, n.config_reported_at, \
        n.unbound_readings, \
        EXISTS (SELECT 1 FROM node_binds b WHERE b.node_id = n.id AND b.state = 'PENDING') AS pending \
   FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id LEFT JOIN greenhouses g ON g.id = z.greenhouse_id";

/// The node whose uid, else hardware id, is `key`.
pub async fn find(pool: &PgPool, key: &str) -> Result<Option<NodeRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{NODE_SELECT} WHERE n.uid = $1 OR n.hardware_id = $1 ORDER BY (n.uid = $1) DESC LIMIT 1"
    ))
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Every node, or those in `state`, by uid.
pub async fn list(pool: &PgPool, state: Option<NodeState>) -> Result<Vec<NodeRow>, sqlx::Error> {
    let rows: Vec<NodeRow> = sqlx::query_as(&format!("{NODE_SELECT} ORDER BY n.uid"))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| state.is_none_or(|s| r.state() == s))
        .collect())
}

/// What a node told about itself (a hello, or any temp-namespace message).
#[derive(Debug, Clone, Default)]
pub struct Sighting {
    pub hardware_id: String,
    /// Declared type (canonicalised here); `None`: not told.
    pub node_type: Option<String>,
    pub fw_version: Option<String>,
    /// From a hello only: the capabilities (and so the move means).
    pub capabilities: Option<Vec<String>>,
    /// A uid the node says it has (hello `node_uid`, or its topic's node
    /// level outside the temp namespace): a known node without a hardware id
    /// learns it.
    pub uid_hint: Option<String>,
    /// The broker it arrived on.
    pub broker_id: String,
}

/// What registering a sighting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new node, under this uid.
    New { id: i64, uid: String },
    /// A known node, seen again.
    Known { id: i64, uid: String },
    /// A decommissioned node: nothing changed.
    Decommissioned { uid: String },
}

/// Registers an unknown node (REGISTERED, unbound, with a generated uid) or
/// refreshes a known one (last seen, observed broker, and what it declared).
pub async fn register(pool: &PgPool, s: &Sighting) -> Result<Registered, sqlx::Error> {
    let node_type = s
        .node_type
        .as_deref()
        .map(|t| lifecycle::canonical_type(Some(t)));
    let capabilities = s.capabilities.as_ref().map(|c| serde_json::json!(c));
    let move_via = s.capabilities.as_deref().map(lifecycle::move_via);
    let touch = format!(
        "UPDATE nodes SET last_seen_at = now(), updated_at = now(), \
            fw_version = COALESCE($2, fw_version), \
            type = CASE WHEN type = 'unknown' AND $3::text IS NOT NULL THEN $3 ELSE type END, \
            capabilities = COALESCE($4, capabilities), move_via = COALESCE($5, move_via), {} \
          WHERE {{}} AND lifecycle <> 'DECOMMISSIONED' RETURNING id, uid",
        observed(6)
    );
    for _ in 0..3 {
        let known: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, uid, lifecycle FROM nodes WHERE hardware_id = $1")
                .bind(&s.hardware_id)
                .fetch_optional(pool)
                .await?;
        if let Some((_, uid, lifecycle)) = &known
            && lifecycle == Lifecycle::Decommissioned.as_str()
        {
            return Ok(Registered::Decommissioned { uid: uid.clone() });
        }
        let target = match (&known, &s.uid_hint) {
            (Some(_), _) => Some(("hardware_id = $1", s.hardware_id.as_str())),
            (None, Some(uid)) => Some(("uid = $1 AND hardware_id IS NULL", uid.as_str())),
            (None, None) => None,
        };
        let touched: Option<(i64, String)> = match target {
            Some((condition, key)) => {
                sqlx::query_as(&touch.replace("{}", condition))
                    .bind(key)
                    .bind(&s.fw_version)
                    .bind(node_type)
                    .bind(&capabilities)
                    .bind(move_via)
                    .bind(&s.broker_id)
                    .fetch_optional(pool)
                    .await?
            }
            None => None,
        };
        if let Some((id, uid)) = touched {
            if known.is_none() {
                sqlx::query(
                    "UPDATE nodes SET hardware_id = $2 WHERE id = $1 AND hardware_id IS NULL",
                )
                .bind(id)
                .bind(&s.hardware_id)
                .execute(pool)
                .await?;
            }
            return Ok(Registered::Known { id, uid });
        }
        if known.is_some() {
            continue; // decommissioned meanwhile: the next round says so
        }
        let kind = node_type.unwrap_or("unknown");
        for attempt in 0..50 {
            let uid = lifecycle::generated_uid(kind, &s.hardware_id, attempt);
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO nodes (uid, hardware_id, type, fw_version, capabilities, move_via, \
                    lifecycle, last_seen_at, observed_broker_id, observed_at) \
                 VALUES ($1, $2, $3, $4, COALESCE($5, '[]'::jsonb), COALESCE($6, 'node_config'), \
                    'REGISTERED', now(), (SELECT id FROM brokers WHERE id = $7), \
                    CASE WHEN EXISTS (SELECT 1 FROM brokers WHERE id = $7) THEN now() END) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&uid)
            .bind(&s.hardware_id)
            .bind(kind)
            .bind(&s.fw_version)
            .bind(&capabilities)
            .bind(move_via)
            .bind(&s.broker_id)
            .fetch_optional(pool)
            .await?;
            if let Some((id,)) = inserted {
                return Ok(Registered::New { id, uid });
            }
            let hardware_taken: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM nodes WHERE hardware_id = $1)")
                    .bind(&s.hardware_id)
                    .fetch_one(pool)
                    .await?;
            if hardware_taken {
                break; // registered meanwhile by another instance: touch it
            }
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "could not register hardware id {}",
        s.hardware_id
    )))
}

/// Keeps the latest reading of an unbound node's channel.
pub async fn store_reading(
    pool: &PgPool,
    node_id: i64,
    channel: &str,
    reading: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE nodes SET unbound_readings = unbound_readings || jsonb_build_object($2::text, $3::jsonb) \
          WHERE id = $1",
    )
    .bind(node_id)
    .bind(channel)
    .bind(reading)
    .execute(pool)
    .await?;
    Ok(())
}

/// The node a message from `node` (a uid, or a hardware id in the temp
/// namespace) belongs to: its id and uid.
pub async fn resolve(pool: &PgPool, node: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, uid FROM nodes WHERE uid = $1 OR hardware_id = $1 ORDER BY (uid = $1) DESC LIMIT 1",
    )
    .bind(node)
    .fetch_optional(pool)
    .await
}

/// Stores a reported config (without its secret), its fw_version and the
/// broker it came from, and brings `node_channels` in line with its channels.
/// Returns the channels that could not be stored.
pub async fn store_report(
    pool: &PgPool,
    node_id: i64,
    config: &Value,
    fw_version: Option<&str>,
    channels: &[NodeConfigChannel],
    broker_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "UPDATE nodes SET config = $2, config_reported_at = now(), fw_version = COALESCE($3, fw_version), \
            last_seen_at = now(), updated_at = now(), {} WHERE id = $1",
        observed(4)
    ))
    .bind(node_id)
    .bind(config)
    .bind(fw_version)
    .bind(broker_id)
    .execute(&mut *tx)
    .await?;
    let skipped = sync_channels(&mut tx, node_id, channels).await?;
    tx.commit().await?;
    Ok(skipped)
}

async fn sync_channels(
    tx: &mut Transaction<'_, Postgres>,
    node_id: i64,
    channels: &[NodeConfigChannel],
) -> Result<Vec<String>, sqlx::Error> {
    let existing: Vec<ChannelRow> = sqlx::query_as(
        "SELECT channel, type AS kind, metric_type, unit FROM node_channels WHERE node_id = $1 FOR UPDATE",
    )
    .bind(node_id)
    .fetch_all(&mut **tx)
    .await?;
    let plan = plan_sync(&existing, channels);
    if !plan.remove.is_empty() {
        sqlx::query("DELETE FROM node_channels WHERE node_id = $1 AND channel = ANY($2)")
            .bind(node_id)
            .bind(&plan.remove)
            .execute(&mut **tx)
            .await?;
    }
    for row in &plan.upsert {
        sqlx::query(
            "INSERT INTO node_channels (node_id, channel, type, metric_type, unit) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (node_id, channel) DO UPDATE SET type = EXCLUDED.type, \
                metric_type = EXCLUDED.metric_type, unit = EXCLUDED.unit",
        )
        .bind(node_id)
        .bind(&row.channel)
        .bind(&row.kind)
        .bind(&row.metric_type)
        .bind(&row.unit)
        .execute(&mut **tx)
        .await?;
    }
    Ok(plan.skipped)
}

/// Confirms a pending move of the node to `broker_id` (its config_report
/// arrived there). True when one was confirmed.
pub async fn confirm_move(
    pool: &PgPool,
    node_id: i64,
    broker_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE node_broker_assignments SET confirmed_at = now() \
          WHERE node_id = $1 AND broker_id = $2 AND confirmed_at IS NULL",
    )
    .bind(node_id)
    .bind(broker_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the node out of its zone (REGISTERED), in a bind's transaction.
pub async fn clear_zone(
    tx: &mut Transaction<'_, Postgres>,
    node_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE nodes SET zone_id = NULL, lifecycle = 'REGISTERED', updated_at = now() \
          WHERE id = $1 AND lifecycle <> 'DECOMMISSIONED'",
    )
    .bind(node_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Places the node in its zone under its new uid, secret and name (ASSIGNED).
pub async fn assign(
    tx: &mut Transaction<'_, Postgres>,
    node_id: i64,
    zone_id: i64,
    uid: &str,
    secret: &str,
    name: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE nodes SET zone_id = $2, uid = $3, secret = $4, name = COALESCE($5, name), \
            lifecycle = 'ASSIGNED', updated_at = now() WHERE id = $1",
    )
    .bind(node_id)
    .bind(zone_id)
    .bind(uid)
    .bind(secret)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Retires the node: out of its zone, DECOMMISSIONED.
pub async fn decommission(
    tx: &mut Transaction<'_, Postgres>,
    node_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE nodes SET zone_id = NULL, lifecycle = 'DECOMMISSIONED', mqtt_password = NULL, \
            updated_at = now() WHERE id = $1",
    )
    .bind(node_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The node's broker password: the one it has, else `fresh`, stored now.
pub async fn issue_mqtt_password(
    pool: &PgPool,
    node_id: i64,
    fresh: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE nodes SET mqtt_password = COALESCE(mqtt_password, $2) WHERE id = $1 RETURNING mqtt_password",
    )
    .bind(node_id)
    .bind(fresh)
    .fetch_one(pool)
    .await
}

/// Whether `uid` belongs to another node than `node_id`, or is the target of
/// another node's pending bind.
pub async fn uid_taken(pool: &PgPool, uid: &str, node_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM nodes WHERE uid = $1 AND id <> $2) \
             OR EXISTS (SELECT 1 FROM node_binds WHERE node_uid = $1 AND node_id <> $2 AND state = 'PENDING')",
    )
    .bind(uid)
    .bind(node_id)
    .fetch_one(pool)
    .await
}

/// The URL of broker `id`, if it is registered.
pub async fn broker_url(pool: &PgPool, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT url FROM brokers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A zone by its greenhouse and zone uids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneLookup {
    Found(i64),
    NoGreenhouse,
    NoZone,
}

pub async fn zone(pool: &PgPool, gh_uid: &str, zone_uid: &str) -> Result<ZoneLookup, sqlx::Error> {
    let gh: Option<i64> = sqlx::query_scalar("SELECT id FROM greenhouses WHERE uid = $1")
        .bind(gh_uid)
        .fetch_optional(pool)
        .await?;
    let Some(gh) = gh else {
        return Ok(ZoneLookup::NoGreenhouse);
    };
    let zone: Option<i64> =
        sqlx::query_scalar("SELECT id FROM zones WHERE uid = $1 AND greenhouse_id = $2")
            .bind(zone_uid)
            .bind(gh)
            .fetch_optional(pool)
            .await?;
    Ok(zone.map_or(ZoneLookup::NoZone, ZoneLookup::Found))
}
