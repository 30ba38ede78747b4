//! The `zones` table: the growing areas of a greenhouse.
//!
//! history-logger: the ids of the zones its uplink names ([`ids_by_uid`]).

use sqlx::PgExecutor;

/// A zone's uid and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneId {
    pub uid: String,
    pub id: i64,
}

/// The zones of `uids` (unknown uids are left out), in one statement.
pub async fn ids_by_uid(
    db: impl PgExecutor<'_>,
    uids: &[String],
) -> Result<Vec<ZoneId>, sqlx::Error> {
    sqlx::query_as!(
        ZoneId,
        "SELECT uid, id FROM zones WHERE uid = ANY($1)",
        uids
    )
    .fetch_all(db)
    .await
}
