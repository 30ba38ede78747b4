//! The `node_broker_assignments` table: the broker each node is assigned to,
//! and whether the node confirmed it is there. Used by device-registry (a
//! config_report from the new broker confirms a move).

use sqlx::PgExecutor;

/// Confirms a pending move of the node to `broker_id` (its config_report
/// arrived there). True when one was confirmed.
pub async fn confirm(
    db: impl PgExecutor<'_>,
    node_id: i64,
    broker_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE node_broker_assignments SET confirmed_at = now() \
          WHERE node_id = $1 AND broker_id = $2 AND confirmed_at IS NULL",
        node_id,
        broker_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
