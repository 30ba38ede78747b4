//! The demo recipe (`SIM_SEED_RECIPE=true`): one long phase whose targets
//! keep automation-engine and scheduler visibly busy with the simulated
//! nodes — pH 5.8 and EC 1.8, while node-sim's water drifts back to pH 6.0
//! and EC 1.6 (acid and nutrient doses every few minutes); irrigation at
//! the 2nd, 4th and 6th minute after seeding (greenhouse time), so a fresh
//! `make up` shows it firing; lights on 06:00–22:00. Seeding again
//! refreshes the targets (and so the irrigation times) and starts the
//! recipe on zones that have no active recipe; others keep theirs.

use sqlx::PgPool;
use tracing::{info, instrument};

use crate::layout::Layout;

/// `recipes.name` of the demo recipe.
pub const RECIPE_NAME: &str = "sim-demo";

/// Upserts the demo recipe and starts it where no recipe is active;
/// returns the number of zones it was started on.
#[instrument(skip_all, fields(greenhouse = %greenhouse), err)]
pub async fn seed(pool: &PgPool, layout: &Layout, greenhouse: &str) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO recipes (name, description) VALUES ($1, 'node-sim demo: pH/EC correction, irrigation, lighting') \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(RECIPE_NAME)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO recipe_phases (recipe_id, phase_index, name, duration_hours, targets) \
         SELECT r.id, 0, 'demo', 720, jsonb_build_object( \
             'ph', '{\"target\": 5.8, \"min\": 5.6, \"max\": 6.0}'::jsonb, \
             'ec', '{\"target\": 1.8, \"min\": 1.6, \"max\": 2.0}'::jsonb, \
             'irrigation', jsonb_build_object('duration_sec', 20, 'times', ( \
                 SELECT string_agg(to_char((now() AT TIME ZONE g.timezone) + make_interval(mins => m), 'HH24:MI'), ',' ORDER BY m) \
                 FROM generate_series(2, 6, 2) AS m)), \
             'lighting', '{\"window\": \"06:00-22:00\"}'::jsonb) \
         FROM recipes r, greenhouses g WHERE r.name = $1 AND g.uid = $2 \
         ON CONFLICT (recipe_id, phase_index) DO UPDATE SET targets = EXCLUDED.targets",
    )
    .bind(RECIPE_NAME)
    .bind(greenhouse)
    .execute(&mut *tx)
    .await?;
    // At most one active recipe per zone (a unique index): the others keep theirs.
    let started = sqlx::query(
        "INSERT INTO zone_recipe_instances (zone_id, recipe_id) \
         SELECT z.id, r.id FROM zones z, recipes r WHERE z.uid = ANY($1) AND r.name = $2 \
         ON CONFLICT DO NOTHING",
    )
    .bind(&layout.zones)
    .bind(RECIPE_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    info!(zones = started, "Demo recipe seeded.");
    Ok(started)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use testkit::TestDb;

    use super::*;
    use crate::settings::SimSettings;

    #[tokio::test]
    async fn every_zone_gets_the_recipe_once_with_irrigation_ahead() {
        let db = TestDb::new().await;
        let sim = SimSettings {
            zones: 2,
            nodes: 4,
            ..SimSettings::default()
        };
        let layout = crate::layout::layout(&sim);
        crate::seed::seed(&db.pool, &layout, "gh-demo")
            .await
            .unwrap();
        assert_eq!(seed(&db.pool, &layout, "gh-demo").await.unwrap(), 2);
        assert_eq!(
            seed(&db.pool, &layout, "gh-demo").await.unwrap(),
            0,
            "one active recipe per zone"
        );
        let targets: Value = sqlx::query_scalar("SELECT targets FROM recipe_phases")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let times: Vec<&str> = targets["irrigation"]["times"]
            .as_str()
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(times.len(), 3, "{targets}");
        let now = chrono::Utc::now().format("%H:%M").to_string();
        assert!(times.iter().all(|t| t.len() == 5 && *t != now), "{targets}");
        assert_eq!(targets["ph"]["target"], 5.8);
    }
}
