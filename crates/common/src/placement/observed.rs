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

use sqlx::PgPool;
use tracing::info;

use crate::metrics as m;
use crate::store::{node_broker_assignments, nodes};

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
    let confirmed = node_broker_assignments::confirm_observed(pool).await?;
    let adopted = node_broker_assignments::adopt_observed(pool).await?;
    let followed =
        node_broker_assignments::follow_observed(pool, move_timeout.as_secs_f64()).await?;
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

pub use crate::store::nodes::StrandedNode;

/// Every stranded node (see the module doc), by uid; `broker` limits it to
/// one dead broker. Also sets the [`m::NODES_STRANDED`] gauge when unfiltered.
pub async fn stranded(
    pool: &PgPool,
    broker: Option<&str>,
) -> Result<Vec<StrandedNode>, sqlx::Error> {
    let rows = nodes::stranded(pool, broker).await?;
    if broker.is_none() {
        metrics::gauge!(m::NODES_STRANDED).set(rows.len() as f64);
    }
    Ok(rows)
}
