//! Binds of nodes to zones (`common::store::node_binds`), PENDING until the
//! node's `config_report` from the target namespace completes them (DONE)
//! or their TTL runs out (EXPIRED, swept by [`expire_loop`]): the steps that
//! change a bind and its node together, each in one transaction.

use std::time::Duration;

use common::metrics as m;
use common::store::node_binds::{self, Bind, NewBind};
use common::store::nodes;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Opens a pending bind, cancelling the node's pending one. Returns its id.
/// The node keeps its zone until the config is out ([`started`]).
pub async fn open(pool: &PgPool, new: &NewBind<'_>) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    node_binds::cancel_pending(&mut *tx, new.node_id).await?;
    let id = node_binds::insert(&mut *tx, new).await?;
    tx.commit().await?;
    Ok(id)
}

/// The config of bind `id` is out: the node leaves its zone while the bind
/// is pending (a rebind goes through pending as a first bind does).
pub async fn started(pool: &PgPool, id: i64, node_id: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if node_binds::is_pending(&mut *tx, id).await? {
        nodes::clear_zone(&mut *tx, node_id).await?;
    }
    tx.commit().await
}

/// Completes `bind`: the node is placed in its zone under its uid with its
/// new secret. False when the bind was no longer pending (expired, replaced).
pub async fn complete(pool: &PgPool, bind: &Bind) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !node_binds::mark_done(&mut *tx, bind.id).await? {
        return Ok(false);
    }
    nodes::assign(
        &mut *tx,
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
        match node_binds::expire(&pool).await {
            Ok(expired) => {
                for node_binds::Expired { node_uid, node_id } in &expired {
                    metrics::counter!(m::DEVICE_BINDS, "outcome" => "expired").increment(1);
                    info!(node_id, target_uid = %node_uid, "Bind expired: no config_report from the target namespace in time; the node stays unbound.");
                }
            }
            Err(e) => warn!(error = %e, "Could not expire pending binds; retrying."),
        }
        if let Ok(n) = node_binds::pending_count(&pool).await {
            metrics::gauge!(m::DEVICE_PENDING_BINDS).set(n as f64);
        }
    }
}
