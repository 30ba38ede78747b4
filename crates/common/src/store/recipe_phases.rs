//! The recipe phase each zone is in: zones with an active recipe instance,
//! their phase's targets, and what automation-engine needs to advance the
//! phase. automation-engine corrects pH/EC from it and advances phases;
//! scheduler fires irrigation and lighting from it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

/// One zone's active recipe instance and its current phase.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ActivePhase {
    pub instance_id: i64,
    pub zone_id: i64,
    pub zone_uid: String,
    /// `greenhouses.timezone`, an IANA name such as `Europe/Lisbon`.
    pub timezone: String,
    /// `zones.capabilities`: per-zone overrides.
    pub capabilities: Value,
    pub recipe_id: i64,
    pub phase_index: i32,
    pub phase_started_at: DateTime<Utc>,
    /// `None` (with `duration_hours` and `targets`) when the recipe has no
    /// phase with the instance's index: a broken recipe, reported by its users.
    pub phase_name: Option<String>,
    pub duration_hours: Option<f64>,
    pub targets: Option<Value>,
    /// The recipe's later phases in order: their indices and durations.
    pub next_indices: Vec<i32>,
    pub next_durations: Vec<f64>,
}

/// Every active instance of an active zone, by zone id, and the database's
/// clock at the time of reading: every instance of every service then judges
/// "now" by one clock, as the leases do.
pub async fn load(pool: &PgPool) -> Result<(DateTime<Utc>, Vec<ActivePhase>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    let phases = sqlx::query_as(
        "SELECT i.id AS instance_id, i.zone_id, z.uid AS zone_uid, g.timezone, z.capabilities, \
                i.recipe_id, i.current_phase_index AS phase_index, i.phase_started_at, \
                p.name AS phase_name, p.duration_hours, p.targets, \
                COALESCE(later.indices, '{}') AS next_indices, \
                COALESCE(later.durations, '{}') AS next_durations \
         FROM zone_recipe_instances i \
         JOIN zones z ON z.id = i.zone_id \
         JOIN greenhouses g ON g.id = z.greenhouse_id \
         LEFT JOIN recipe_phases p ON p.recipe_id = i.recipe_id AND p.phase_index = i.current_phase_index \
         LEFT JOIN LATERAL ( \
             SELECT array_agg(phase_index ORDER BY phase_index) AS indices, \
                    array_agg(duration_hours ORDER BY phase_index) AS durations \
             FROM recipe_phases WHERE recipe_id = i.recipe_id AND phase_index > i.current_phase_index \
         ) later ON true \
         WHERE i.status = 'ACTIVE' AND z.status = 'ACTIVE' \
         ORDER BY i.zone_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((now, phases))
}
