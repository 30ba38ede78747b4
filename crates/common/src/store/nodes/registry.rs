//! The `nodes` table as broker-registry reads it outside the advisor: how
//! many bound nodes are OFFLINE (its health monitor's gauge), and the uids
//! of the nodes a rebalance plan moves.

use sqlx::PgExecutor;

use super::NodeRef;

/// How many nodes bound to a zone are OFFLINE: a node waiting in the temp
/// namespace or decommissioned going quiet is nobody's alarm.
pub async fn offline_bound(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM nodes WHERE status = 'OFFLINE' AND lifecycle = 'ASSIGNED'"#
    )
    .fetch_one(db)
    .await
}

/// The ids and uids of the nodes `ids` that exist, in no particular order.
pub async fn refs(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<NodeRef>, sqlx::Error> {
    sqlx::query_as!(NodeRef, "SELECT id, uid FROM nodes WHERE id = ANY($1)", ids)
        .fetch_all(db)
        .await
}
