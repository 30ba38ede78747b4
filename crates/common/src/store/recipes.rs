//! The `recipes` table: named recipes, whose phases are in
//! `recipe_phases` (see [`super::recipe_phases`]). node-sim creates its
//! demo recipe here.

use sqlx::PgExecutor;

/// Creates recipe `name` with `description` unless it exists.
pub async fn create_if_missing(
    db: impl PgExecutor<'_>,
    name: &str,
    description: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO recipes (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        description
    )
    .execute(db)
    .await?;
    Ok(())
}
