//! The `zones` table: the zones of each greenhouse, where nodes are bound.
//! Used by device-registry (a bind's target).
//!
//! The `zones` table, as the command path reads it: which zone a request
//! names. Used by mqtt-bridge's command routes.
//!
//! The `zones` table. node-sim seeds the zones of its simulated greenhouse
//! here; the joins that read zones with their nodes, recipes or greenhouse
//! live with the rows they return.

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

/// Puts the zones `uids` (named `names`, at the same index) in greenhouse
/// `greenhouse_id`, creating the missing ones and moving the others there;
/// a zone's name is left as it is. Returns the rows written.
pub async fn seed(
    db: impl PgExecutor<'_>,
    greenhouse_id: i64,
    uids: &[String],
    names: &[String],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO zones (uid, greenhouse_id, name)
         SELECT uid, $1, name FROM UNNEST($2::text[], $3::text[]) AS t (uid, name)
         ON CONFLICT (uid) DO UPDATE SET greenhouse_id = EXCLUDED.greenhouse_id, updated_at = now()
         WHERE zones.greenhouse_id IS DISTINCT FROM EXCLUDED.greenhouse_id",
        greenhouse_id,
        uids,
        names
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
