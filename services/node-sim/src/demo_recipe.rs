//! The demo recipe (`SIM_SEED_RECIPE=true`): one long phase whose targets
//! keep automation-engine and scheduler visibly busy with the simulated
//! nodes — pH 5.8 and EC 1.8, while node-sim's water drifts back to pH 6.0
//! and EC 1.6 (acid and nutrient doses every few minutes); irrigation at
//! the 2nd, 4th and 6th minute after seeding (greenhouse time), so a fresh
//! `make up` shows it firing; lights on 06:00–22:00. Seeding again
//! refreshes the targets (and so the irrigation times) and starts the
//! recipe on zones that have no active recipe; others keep theirs.

use chrono::{Duration, NaiveDateTime};
use common::store::recipe_phases::{self, NewPhase};
use common::store::{greenhouses, recipes};
use serde_json::{Value, json};
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::layout::Layout;

/// `recipes.name` of the demo recipe.
pub const RECIPE_NAME: &str = "sim-demo";

/// `recipes.description` of the demo recipe.
const DESCRIPTION: &str = "node-sim demo: pH/EC correction, irrigation, lighting";

/// The demo phase's targets, with irrigation 2, 4 and 6 minutes after
/// `local_now` (the greenhouse's wall clock).
fn targets(local_now: NaiveDateTime) -> Value {
    let times: Vec<String> = [2, 4, 6]
        .iter()
        .map(|m| {
            (local_now + Duration::minutes(*m))
                .format("%H:%M")
                .to_string()
        })
        .collect();
    json!({
        "ph": {"target": 5.8, "min": 5.6, "max": 6.0},
        "ec": {"target": 1.8, "min": 1.6, "max": 2.0},
        "irrigation": {"duration_sec": 20, "times": times.join(",")},
        "lighting": {"window": "06:00-22:00"},
    })
}

/// Upserts the demo recipe and starts it where no recipe is active;
/// returns the number of zones it was started on.
#[instrument(skip_all, fields(greenhouse = %greenhouse), err)]
pub async fn seed(pool: &PgPool, layout: &Layout, greenhouse: &str) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    recipes::create_if_missing(&mut *tx, RECIPE_NAME, DESCRIPTION).await?;
    if let Some(local_now) = greenhouses::local_now(&mut *tx, greenhouse).await? {
        let targets = targets(local_now);
        let phase = NewPhase {
            index: 0,
            name: "demo",
            duration_hours: 720.0,
            targets: &targets,
        };
        recipe_phases::upsert_phase(&mut *tx, RECIPE_NAME, &phase).await?;
    }
    let started = recipe_phases::start_where_idle(&mut *tx, &layout.zones, RECIPE_NAME).await?;
    tx.commit().await?;
    info!(zones = started, "Demo recipe seeded.");
    Ok(started)
}

#[cfg(test)]
mod tests {
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
