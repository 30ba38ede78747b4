//! The recipe phase each zone is in: the `recipe_phases` table (a recipe's
//! phases and their targets) and the `zone_recipe_instances` table (a
//! zone's place in a recipe), one owner for both since every reader joins
//! them. Zones with an active recipe instance, their phase's targets, and
//! what automation-engine needs to advance the phase: automation-engine
//! corrects pH/EC from it and advances phases; scheduler fires irrigation
//! and lighting from it; node-sim seeds its demo recipe here.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

/// `zone_recipe_instances.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "UPPERCASE")]
pub enum InstanceStatus {
    Active,
    Paused,
    Completed,
}

/// One zone's active recipe instance and its current phase.
#[derive(Debug, Clone, PartialEq)]
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
    let now = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(&mut *tx)
        .await?;
    let phases = sqlx::query_as!(
        ActivePhase,
        r#"SELECT i.id AS instance_id, i.zone_id, z.uid AS zone_uid, g.timezone, z.capabilities,
                  i.recipe_id, i.current_phase_index AS phase_index, i.phase_started_at,
                  p.name AS "phase_name?", p.duration_hours AS "duration_hours?", p.targets AS "targets?",
                  COALESCE(later.indices, '{}') AS "next_indices!",
                  COALESCE(later.durations, '{}') AS "next_durations!"
           FROM zone_recipe_instances i
           JOIN zones z ON z.id = i.zone_id
           JOIN greenhouses g ON g.id = z.greenhouse_id
           LEFT JOIN recipe_phases p ON p.recipe_id = i.recipe_id AND p.phase_index = i.current_phase_index
           LEFT JOIN LATERAL (
               SELECT array_agg(phase_index ORDER BY phase_index) AS indices,
                      array_agg(duration_hours ORDER BY phase_index) AS durations
               FROM recipe_phases WHERE recipe_id = i.recipe_id AND phase_index > i.current_phase_index
           ) later ON true
           WHERE i.status = 'ACTIVE' AND z.status = 'ACTIVE'
           ORDER BY i.zone_id"#
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((now, phases))
}

queries! {
    /// Moves instance `instance_id` from phase `from_index` to `index` started at
    /// `started_at`, with `status`, unless another writer moved it first (it is
    /// no longer ACTIVE in `from_index`). True when this moved it.
    pub fn advance(
        db,
        instance_id: i64,
        from_index: i32,
        index: i32,
        started_at: DateTime<Utc>,
        status: InstanceStatus,
    ) -> bool {
        one_row(query!(
            "UPDATE zone_recipe_instances \
             SET current_phase_index = $2, phase_started_at = $3, status = $4 \
             WHERE id = $1 AND status = 'ACTIVE' AND current_phase_index = $5",
            instance_id, index, started_at, status as _, from_index
        ))
    }
}

/// One phase of a recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPhase<'a> {
    pub index: i32,
    pub name: &'a str,
    pub duration_hours: f64,
    pub targets: &'a Value,
}

queries! {
    /// Adds `phase` to recipe `recipe` (by name), or sets the targets of the
    /// phase it has at that index (its name and duration stay).
    pub fn upsert_phase(db, recipe: &str, phase: &NewPhase<'_>) {
        execute(query!(
            "INSERT INTO recipe_phases (recipe_id, phase_index, name, duration_hours, targets) \
             SELECT r.id, $2, $3, $4, $5 FROM recipes r WHERE r.name = $1 \
             ON CONFLICT (recipe_id, phase_index) DO UPDATE SET targets = EXCLUDED.targets",
            recipe, phase.index, phase.name, phase.duration_hours, phase.targets
        ))
    }

    /// Starts recipe `recipe` (by name) on each zone of `zone_uids` that has no
    /// active recipe (at most one per zone, a unique index: the others keep
    /// theirs); returns on how many.
    pub fn start_where_idle(db, zone_uids: &[String], recipe: &str) -> u64 {
        rows_affected(query!(
            "INSERT INTO zone_recipe_instances (zone_id, recipe_id) \
             SELECT z.id, r.id FROM zones z, recipes r WHERE z.uid = ANY($1) AND r.name = $2 \
             ON CONFLICT DO NOTHING",
            zone_uids, recipe
        ))
    }
}
