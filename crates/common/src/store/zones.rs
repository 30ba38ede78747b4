//! The `zones` table: the zones of each greenhouse, where nodes are bound.
//! Used by device-registry (a bind's target).
//!
//! The `zones` table, as the command path reads it: which zone a request
//! names. Used by mqtt-bridge's command routes.

use sqlx::PgExecutor;

/// The id of the zone whose uid is `uid`, in greenhouse `greenhouse_id`.
pub async fn id_in(
    db: impl PgExecutor<'_>,
    greenhouse_id: i64,
    uid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM zones WHERE uid = $1 AND greenhouse_id = $2",
        uid,
        greenhouse_id
    )
    .fetch_optional(db)
    .await
}

/// The id of the zone with uid `zone`, or with id `zone_id`.
pub async fn find_id(
    db: impl PgExecutor<'_>,
    zone: &str,
    zone_id: Option<i64>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM zones WHERE uid = $1 OR id = $2",
        zone,
        zone_id
    )
    .fetch_optional(db)
    .await
}
