//! The `greenhouses` table: the top of the greenhouse, zone, node tree.
//! node-sim creates its simulated greenhouse here; device-registry looks a
//! bind's greenhouse up; the joins that read a greenhouse with its zones
//! live with the rows they return.

use sqlx::PgExecutor;

/// Creates greenhouse `uid` named `name` (time zone UTC) unless it exists;
/// true when it was created.
pub async fn create_if_missing(
    db: impl PgExecutor<'_>,
    uid: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO greenhouses (uid, name, timezone) VALUES ($1, $2, 'UTC') \
         ON CONFLICT (uid) DO NOTHING",
        uid,
        name
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The id of greenhouse `uid`, if it exists.
pub async fn id_of(db: impl PgExecutor<'_>, uid: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("SELECT id FROM greenhouses WHERE uid = $1", uid)
        .fetch_optional(db)
        .await
}

/// The wall-clock time in greenhouse `uid`'s time zone now, if it exists.
pub async fn local_now(
    db: impl PgExecutor<'_>,
    uid: &str,
) -> Result<Option<chrono::NaiveDateTime>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT now() AT TIME ZONE timezone AS "now!" FROM greenhouses WHERE uid = $1"#,
        uid
    )
    .fetch_optional(db)
    .await
}
