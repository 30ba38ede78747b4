//! The `brokers` table, as the command path reads it: whether another broker
//! could take a node (so a failover is to be expected). Used by
//! [`crate::commands::route`].

use sqlx::PgExecutor;

/// Whether a broker other than `broker_id` is enabled, not draining and not
/// OFFLINE.
pub async fn other_usable(db: impl PgExecutor<'_>, broker_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM brokers WHERE enabled AND NOT draining \
                        AND status <> 'OFFLINE' AND id <> $1) AS \"usable!\"",
        broker_id
    )
    .fetch_one(db)
    .await
}
