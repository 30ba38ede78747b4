//! The `greenhouses` table: the top of the greenhouse, zone, node tree.
//! Used by device-registry (a bind's target).

use sqlx::PgExecutor;

/// The id of the greenhouse whose uid is `uid`.
pub async fn id_of(db: impl PgExecutor<'_>, uid: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("SELECT id FROM greenhouses WHERE uid = $1", uid)
        .fetch_optional(db)
        .await
}
