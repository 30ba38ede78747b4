//! `node_binds`: binds of nodes to zones, PENDING until the node's
//! `config_report` from the target namespace completes them (DONE) or their
//! TTL runs out (EXPIRED, swept by [`expire_loop`]). Only this module names
//! the table in SQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::metrics as m;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lifecycle::BindTarget;
use crate::store;

/// A bind with its target.
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
    pub state: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Bind {
    pub fn target(&self) -> BindTarget {
        BindTarget {
            gh_uid: self.gh_uid.clone(),
            zone_uid: self.zone_uid.clone(),
            node_uid: self.node_uid.clone(),
        }
    }
}

const BIND_SELECT: &str = "SELECT b.id, b.node_id, b.zone_id, z.uid AS zone_uid, g.uid AS gh_uid, b.node_uid, \
        b.name, b.secret, b.config, b.config_topic, b.broker_id, b.state, b.requested_at, b.expires_at, \
        b.finished_at \
   FROM node_binds b JOIN zones z ON z.id = b.zone_id JOIN greenhouses g ON g.id = z.greenhouse_id";

/// The node's pending bind.
pub async fn pending(pool: &PgPool, node_id: i64) -> Result<Option<Bind>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{BIND_SELECT} WHERE b.node_id = $1 AND b.state = 'PENDING'"
    ))
    .bind(node_id)
    .fetch_optional(pool)
    .await
}

/// The node's latest bind, whatever its state.
pub async fn latest(pool: &PgPool, node_id: i64) -> Result<Option<Bind>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{BIND_SELECT} WHERE b.node_id = $1 ORDER BY b.requested_at DESC, b.id DESC LIMIT 1"
    ))
    .bind(node_id)
    .fetch_optional(pool)
    .await
}

/// The pending bind whose target uid is `node_uid`.
pub async fn pending_for_uid(pool: &PgPool, node_uid: &str) -> Result<Option<Bind>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{BIND_SELECT} WHERE b.node_uid = $1 AND b.state = 'PENDING' AND b.expires_at > now()"
    ))
    .bind(node_uid)
    .fetch_optional(pool)
    .await
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
    pub broker_id: Option<&'a str>,
    pub ttl: Duration,
}

/// Opens a pending bind, cancelling the node's pending one. Returns its id.
/// The node keeps its zone until the config is out ([`started`]).
pub async fn open(pool: &PgPool, new: &NewBind<'_>) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    finish_pending(&mut tx, new.node_id, "CANCELLED").await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO node_binds (node_id, zone_id, node_uid, name, secret, config, config_topic, broker_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT id FROM brokers WHERE id = $8), \
                 now() + make_interval(secs => $9)) RETURNING id",
    )
    .bind(new.node_id)
    .bind(new.zone_id)
    .bind(new.node_uid)
    .bind(new.name)
    .bind(new.secret)
    .bind(new.config)
    .bind(new.config_topic)
    .bind(new.broker_id)
    .bind(new.ttl.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The config of bind `id` is out: the node leaves its zone while the bind
/// is pending (a rebind goes through pending as a first bind does).
pub async fn started(pool: &PgPool, id: i64, node_id: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let still_pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM node_binds WHERE id = $1 AND state = 'PENDING')",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if still_pending {
        store::clear_zone(&mut tx, node_id).await?;
    }
    tx.commit().await
}

/// A retry of a pending bind: its TTL starts again.
pub async fn extend(pool: &PgPool, id: i64, ttl: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE node_binds SET expires_at = now() + make_interval(secs => $2) WHERE id = $1 AND state = 'PENDING'",
    )
    .bind(id)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends the node's pending bind (if any) with `state`; true when there was one.
pub async fn finish_pending(
    tx: &mut Transaction<'_, Postgres>,
    node_id: i64,
    state: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE node_binds SET state = $2, finished_at = now() WHERE node_id = $1 AND state = 'PENDING'",
    )
    .bind(node_id)
    .bind(state)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Cancels bind `id` (its config could not be published).
pub async fn cancel(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE node_binds SET state = 'CANCELLED', finished_at = now() WHERE id = $1 AND state = 'PENDING'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Completes `bind`: the node is placed in its zone under its uid with its
/// new secret. False when the bind was no longer pending (expired, replaced).
pub async fn complete(pool: &PgPool, bind: &Bind) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE node_binds SET state = 'DONE', finished_at = now() \
          WHERE id = $1 AND state = 'PENDING' AND expires_at > now()",
    )
    .bind(bind.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    store::assign(
        &mut tx,
        bind.node_id,
        bind.zone_id,
        &bind.node_uid,
        &bind.secret,
        bind.name.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Marks every pending bind past its TTL EXPIRED; returns the target uid
/// and node id of each.
pub async fn expire(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE node_binds SET state = 'EXPIRED', finished_at = now() \
          WHERE state = 'PENDING' AND expires_at <= now() RETURNING node_uid, node_id",
    )
    .fetch_all(pool)
    .await
}

/// How many binds are pending.
pub async fn pending_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM node_binds WHERE state = 'PENDING'")
        .fetch_one(pool)
        .await
}

/// Expires binds every `every` until `stop`. Every instance may run it: the
/// update is atomic, so a bind expires once.
pub async fn expire_loop(pool: PgPool, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match expire(&pool).await {
            Ok(expired) => {
                for (node_uid, node_id) in &expired {
                    metrics::counter!(m::DEVICE_BINDS, "outcome" => "expired").increment(1);
                    info!(node_id, target_uid = %node_uid, "Bind expired: no config_report from the target namespace in time; the node stays unbound.");
                }
            }
            Err(e) => warn!(error = %e, "Could not expire pending binds; retrying."),
        }
        if let Ok(n) = pending_count(&pool).await {
            metrics::gauge!(m::DEVICE_PENDING_BINDS).set(n as f64);
        }
    }
}
