//! The `brokers` table: the MQTT brokers of the fleet, one row each.
//! Used by device-registry (the URL a NodeConfig names).

use sqlx::PgExecutor;

/// The URL of broker `id`, if it is registered.
pub async fn url(db: impl PgExecutor<'_>, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT url FROM brokers WHERE id = $1", id)
        .fetch_optional(db)
        .await
}
