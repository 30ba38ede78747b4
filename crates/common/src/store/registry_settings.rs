//! The `registry_settings` table: settings changed at run time through
//! broker-registry's API that every instance follows, a restart too (the
//! assignment strategy). Used by broker-registry only.

use sqlx::PgExecutor;

/// The key of the assignment strategy (overrides `ASSIGNMENT_STRATEGY`).
pub const ASSIGNMENT_STRATEGY: &str = "assignment_strategy";

/// Setting `key`, if it was ever set.
pub async fn get(db: impl PgExecutor<'_>, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT value FROM registry_settings WHERE key = $1", key)
        .fetch_optional(db)
        .await
}

/// Sets `key` to `value`, by `actor`.
pub async fn set(
    db: impl PgExecutor<'_>,
    key: &str,
    value: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO registry_settings (key, value, updated_by) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
             updated_by = EXCLUDED.updated_by, updated_at = now()",
        key,
        value,
        actor
    )
    .execute(db)
    .await?;
    Ok(())
}
