//! The assignments against where nodes really are (`nodes.observed_broker_id`
//! / `observed_at`, written from every uplink by history-logger and
//! device-registry): the sweep that keeps them in line, and the nodes
//! stranded on a dead broker.
//!
//! [`follow_observations`] (run by broker-registry's engine, the holder of the
//! assignment lease, every assignment round):
//! 1. **confirms** a move when the node is observed on its new broker after
//!    the move was recorded — the firmware's `config_report` (or any uplink)
//!    from there; this works for every move means;
//! 2. **adopts** a node that cannot follow a `config/update` (`node_config`,
//!    `none`) and has no assignment: it is assigned, confirmed, where it is
//!    observed — the registry never places it elsewhere;
//! 3. **follows** such a node when it is observed elsewhere than its
//!    assignment: after its confirmed assignment (it reappeared on another
//!    broker: a stranded node comes back), or when a NodeConfig move was not
//!    made within the move timeout (the move is taken back).
//!
//! Stranded ([`stranded`]): a node that cannot follow a `config/update`
//! whose route (see [`crate::commands::route`]) is an OFFLINE broker: nothing
//! can reach it until it reappears somewhere.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tracing::info;

use crate::metrics as m;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Followed {
    /// Moves confirmed by an observation on the new broker.
    pub confirmed: u64,
    /// Nodes given an assignment where they are observed.
    pub adopted: u64,
    /// Assignments moved to where the node is observed.
    pub followed: u64,
}

/// One sweep (see the module doc); `move_timeout` is how long a NodeConfig
/// move may take before it is taken back.
pub async fn follow_observations(
    pool: &PgPool,
    move_timeout: Duration,
) -> Result<Followed, sqlx::Error> {
    let confirmed = sqlx::query(
        "UPDATE node_broker_assignments a SET confirmed_at = now() FROM nodes n \
         WHERE n.id = a.node_id AND a.confirmed_at IS NULL \
           AND n.observed_broker_id = a.broker_id AND n.observed_at >= a.assigned_at",
    )
    .execute(pool)
    .await?
    .rows_affected();
    let adopted = sqlx::query(
        "INSERT INTO node_broker_assignments (node_id, broker_id, strategy, config_ts, confirmed_at) \
         SELECT n.id, n.observed_broker_id, 'observed', floor(extract(epoch FROM now()))::int8, now() \
         FROM nodes n WHERE n.move_via <> 'config_update' AND n.observed_broker_id IS NOT NULL \
           AND NOT EXISTS (SELECT 1 FROM node_broker_assignments a WHERE a.node_id = n.id) \
         ON CONFLICT (node_id) DO NOTHING",
    )
    .execute(pool)
    .await?
    .rows_affected();
    let followed = sqlx::query(
        "UPDATE node_broker_assignments a \
         SET previous_broker_id = a.broker_id, broker_id = n.observed_broker_id, strategy = 'observed', \
             assigned_at = now(), confirmed_at = now(), \
             config_ts = GREATEST(floor(extract(epoch FROM now()))::int8, a.config_ts + 1) \
         FROM nodes n \
         WHERE n.id = a.node_id AND n.move_via <> 'config_update' \
           AND n.observed_broker_id IS NOT NULL AND n.observed_broker_id <> a.broker_id \
           AND ((a.confirmed_at IS NOT NULL AND n.observed_at > a.confirmed_at) \
                OR (a.confirmed_at IS NULL AND a.assigned_at < now() - make_interval(secs => $1)))",
    )
    .bind(move_timeout.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    if confirmed > 0 {
        metrics::counter!(m::NODE_MOVES_CONFIRMED).increment(confirmed);
    }
    if adopted + followed > 0 {
        metrics::counter!(m::ASSIGNMENTS_FOLLOWED).increment(adopted + followed);
        info!(
            adopted,
            followed, "Assignments follow where nodes are observed."
        );
    }
    Ok(Followed {
        confirmed,
        adopted,
        followed,
    })
}

/// A node stranded on a dead broker.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StrandedNode {
    pub node_id: i64,
    pub node_uid: String,
    pub move_via: String,
    /// The OFFLINE broker it was last on.
    pub broker_id: String,
    pub observed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every stranded node (see the module doc), by uid; `broker` limits it to
/// one dead broker. Also sets the [`m::NODES_STRANDED`] gauge when unfiltered.
pub async fn stranded(
    pool: &PgPool,
    broker: Option<&str>,
) -> Result<Vec<StrandedNode>, sqlx::Error> {
    let rows: Vec<StrandedNode> = sqlx::query_as(concat!(
        "SELECT n.id AS node_id, n.uid AS node_uid, n.move_via, b.id AS broker_id, n.observed_at \
         FROM nodes n LEFT JOIN node_broker_assignments a ON a.node_id = n.id \
         JOIN brokers b ON b.id = ",
        crate::route_broker_sql!(),
        " WHERE n.move_via <> 'config_update' AND b.status = 'OFFLINE' \
           AND ($1::text IS NULL OR b.id = $1) ORDER BY n.uid"
    ))
    .bind(broker)
    .fetch_all(pool)
    .await?;
    if broker.is_none() {
        metrics::gauge!(m::NODES_STRANDED).set(rows.len() as f64);
    }
    Ok(rows)
}
