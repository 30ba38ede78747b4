//! Recipes for tests and benchmarks of the services that follow them
//! (automation-engine, scheduler): a recipe with its phases, started on a
//! zone as its active instance. Not used by any production path.

use chrono::{Duration, Utc};
use serde_json::Value;
use sqlx::PgPool;

/// Creates a recipe with `phases` (duration in hours, targets) and starts
/// it on zone `zone_uid`, in phase 0, begun `phase_age` ago. Returns the
/// instance id.
pub async fn start_recipe(
    pool: &PgPool,
    zone_uid: &str,
    phases: &[(f64, Value)],
    phase_age: Duration,
) -> i64 {
    let mut tx = pool.begin().await.expect("begin");
    let recipe_id: i64 = sqlx::query_scalar("INSERT INTO recipes (name) VALUES ($1) RETURNING id")
        .bind(format!("test-{zone_uid}-{}", uuid::Uuid::new_v4().simple()))
        .fetch_one(&mut *tx)
        .await
        .expect("recipe");
    for (index, (hours, targets)) in phases.iter().enumerate() {
        sqlx::query(
            "INSERT INTO recipe_phases (recipe_id, phase_index, name, duration_hours, targets) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(recipe_id)
        .bind(index as i32)
        .bind(format!("phase {index}"))
        .bind(hours)
        .bind(targets)
        .execute(&mut *tx)
        .await
        .expect("phase");
    }
    let started = Utc::now() - phase_age;
    let instance = sqlx::query_scalar(
        "INSERT INTO zone_recipe_instances (zone_id, recipe_id, started_at, phase_started_at) \
         SELECT id, $2, $3, $3 FROM zones WHERE uid = $1 RETURNING id",
    )
    .bind(zone_uid)
    .bind(recipe_id)
    .bind(started)
    .fetch_one(&mut *tx)
    .await
    .expect("the zone exists and has no active recipe");
    tx.commit().await.expect("commit");
    instance
}

/// Sets a zone's `capabilities`.
pub async fn set_capabilities(pool: &PgPool, zone_uid: &str, capabilities: Value) {
    sqlx::query("UPDATE zones SET capabilities = $2 WHERE uid = $1")
        .bind(zone_uid)
        .bind(capabilities)
        .execute(pool)
        .await
        .expect("capabilities");
}
