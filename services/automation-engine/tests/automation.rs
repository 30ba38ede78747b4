//! The engine against real PostgreSQL, Mosquitto, node-sim and mqtt-bridge:
//! what it doses, what it refuses to dose and why, phases, bad zones.

mod helpers;

use chrono::Duration;
use helpers::*;
use serde_json::json;
use testkit::eventually;
use testkit::recipes::start_recipe;

const AUTOMATION_COMMANDS: &str = "SELECT count(*) FROM commands WHERE source = 'automation'";

/// zn-1 reads pH 6.8 against a target of 5.8: acid is dosed on its pH node,
/// the node runs the pump (its pH falls), the command ends DONE; EC on
/// target gets nothing; the next cycles wait out the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_ph_gets_acid_and_the_node_is_corrected() {
    // zn-1: nd-ph-1, nd-ec-3; zn-2: nd-ph-2, nd-ec-4.
    let w = world(2, 4, &[]).await;
    let pool = &w.db.pool;
    let before = sim_values(&w.sim_url, "nd-ph-1").await["ph_sensor"];
    ph_overrides(pool, "zn-1", json!({"min_interval_sec": 3600})).await;
    ph(pool, "nd-ph-1", 6.8).await;
    reading(
        pool,
        "nd-ec-3",
        "ec_sensor",
        "EC",
        1.6,
        Duration::seconds(1),
        Some(true),
    )
    .await;
    start_recipe(
        pool,
        "zn-1",
        &[(
            48.0,
            json!({"ph": {"target": 5.8, "min": 5.6, "max": 6.0}, "ec": setpoint(1.6)}),
        )],
        Duration::minutes(1),
    )
    .await;

    let done = wait_count(
        pool,
        "SELECT count(*) FROM commands WHERE source = 'automation' AND status = 'DONE'",
        1,
    )
    .await;
    assert_eq!(done, 1, "the dose reached DONE");
    let (node, channel, cmd, duration_ms): (String, String, String, i64) = sqlx::query_as(
        "SELECT n.uid, c.channel, c.cmd, (c.params->>'duration_ms')::int8 \
         FROM commands c JOIN nodes n ON n.id = c.node_id WHERE c.source = 'automation'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (node.as_str(), channel.as_str(), cmd.as_str()),
        ("nd-ph-1", "pump_acid", "run_pump")
    );
    // 1.0 pH above target × 5000 ms per unit, the default maximum.
    assert_eq!(duration_ms, 5000);
    let after = sim_values(&w.sim_url, "nd-ph-1").await["ph_sensor"];
    assert!(
        after < before - 0.3,
        "node-sim's pH fell: {before} -> {after}"
    );

    let doses = eventually(WAIT, || async {
        Some(events(pool, "zn-1", "AUTOMATION_DOSE").await).filter(|d| !d.is_empty())
    })
    .await
    .unwrap_or_default();
    assert_eq!(doses.len(), 1, "{doses:?}");
    assert_eq!(doses[0]["quantity"], "ph");
    assert_eq!(doses[0]["direction"], "down");
    assert_eq!(doses[0]["sent"], true);
    let waited = eventually(WAIT, || async {
        let skips = events(pool, "zn-1", "AUTOMATION_SKIP").await;
        let ec = skips
            .iter()
            .any(|e| e["quantity"] == "ec" && e["reason"] == "in_dead_band");
        let ph = skips
            .iter()
            .any(|e| e["quantity"] == "ph" && e["reason"] == "min_interval");
        (ec && ph).then_some(())
    })
    .await;
    assert!(
        waited.is_some(),
        "EC on target and the pH interval are logged"
    );
    assert_eq!(count(pool, AUTOMATION_COMMANDS).await, 1, "one dose only");
    // zn-2 has no recipe: never looked at.
    assert!(events(pool, "zn-2", "AUTOMATION_SKIP").await.is_empty());
}

/// On target, stale, unstable and missing readings: a skip event each with
/// its reason, and not one command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_target_stale_unstable_and_missing_readings_get_no_dose() {
    // One pH node per zone: nd-ph-1 … nd-ph-4 in zn-1 … zn-4.
    let w = world(4, 4, &[]).await;
    let pool = &w.db.pool;
    ph(pool, "nd-ph-1", 5.8).await;
    reading(
        pool,
        "nd-ph-2",
        "ph_sensor",
        "PH",
        6.8,
        Duration::minutes(10),
        Some(true),
    )
    .await;
    reading(
        pool,
        "nd-ph-3",
        "ph_sensor",
        "PH",
        6.8,
        Duration::seconds(1),
        Some(false),
    )
    .await;
    for zone in ["zn-1", "zn-2", "zn-3", "zn-4"] {
        ph_recipe(pool, zone).await;
    }
    let expected = [
        ("zn-1", "in_dead_band"),
        ("zn-2", "stale_reading"),
        ("zn-3", "unstable_reading"),
        ("zn-4", "no_reading"),
    ];
    for (zone, reason) in expected {
        let seen = eventually(WAIT, || async {
            events(pool, zone, "AUTOMATION_SKIP")
                .await
                .iter()
                .any(|e| e["reason"] == reason)
                .then_some(())
        })
        .await;
        assert!(seen.is_some(), "{zone}: a skip with reason {reason}");
    }
    let stale = events(pool, "zn-2", "AUTOMATION_SKIP").await;
    assert!(stale[0]["age_sec"].as_i64().unwrap() >= 590, "{stale:?}");
    // Every zone has been decided on at least once: nothing was sent.
    assert_eq!(count(pool, AUTOMATION_COMMANDS).await, 0);
    assert!(events(pool, "zn-1", "AUTOMATION_DOSE").await.is_empty());
}

/// A reading dated in the future is never acted on: alone in its zone it is
/// a `future_reading` skip (counted, an event) and no dose; beside a current
/// reading of the zone it does not hide that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_from_the_future_is_never_dosed_against() {
    // zn-1: nd-ph-1; zn-2: nd-ph-2.
    let before = future_reading_skips();
    let w = world(2, 2, &[]).await;
    let pool = &w.db.pool;
    let ahead = Duration::minutes(-10);
    reading(pool, "nd-ph-1", "ph_sensor", "PH", 6.8, ahead, Some(true)).await;
    ph(pool, "nd-ph-2", 6.8).await;
    // Low enough to ask for base, were it believed.
    reading(pool, "nd-ph-2", "ph_probe", "PH", 4.0, ahead, Some(true)).await;
    for zone in ["zn-1", "zn-2"] {
        ph_recipe(pool, zone).await;
    }
    let skipped = eventually(WAIT, || async {
        events(pool, "zn-1", "AUTOMATION_SKIP")
            .await
            .into_iter()
            .find(|e| e["reason"] == "future_reading")
    })
    .await
    .expect("zn-1: a future_reading skip");
    assert!(skipped["ahead_sec"].as_i64().unwrap() >= 590, "{skipped}");
    let acid = wait_count(
        pool,
        "SELECT count(*) FROM commands c JOIN zones z ON z.id = c.zone_id \
          WHERE c.source = 'automation' AND z.uid = 'zn-2' AND c.channel = 'pump_acid'",
        1,
    )
    .await;
    assert_eq!(acid, 1, "zn-2 dosed against its current reading");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM commands c JOIN zones z ON z.id = c.zone_id \
              WHERE c.source = 'automation' AND (z.uid = 'zn-1' OR c.channel <> 'pump_acid')"
        )
        .await,
        0,
        "nothing dosed against a future reading"
    );
    let counted = future_reading_skips() - before;
    assert!(
        counted >= 1.0,
        "future_reading counted: {counted}\n{}",
        common::runtime::http::metrics_handle().render()
    );
}

/// `automation_decisions_total{decision="future_reading"}` of this process,
/// whatever the quantity. Only the test with a reading from the future
/// records it in this binary; it reads a delta around its own cycles.
fn future_reading_skips() -> f64 {
    common::runtime::http::metrics_handle()
        .render()
        .lines()
        .filter(|l| {
            l.starts_with(common::metrics::AUTOMATION_DECISIONS)
                && l.contains(r#"decision="future_reading""#)
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The node never answers: the first dose stays SENT and nothing more is
/// dosed until the bridge times it out; then the next dose goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_dose_while_the_first_has_no_final_status() {
    let w = world(
        1,
        1,
        &[("SIM_DROP_RESPONSES", "1"), ("COMMAND_TIMEOUT_SEC", "4")],
    )
    .await;
    let pool = &w.db.pool;
    back_to_back_doses(pool, "zn-1").await;
    ph(pool, "nd-ph-1", 6.8).await;
    ph_recipe(pool, "zn-1").await;

    let pending = eventually(WAIT, || async {
        let skips = events(pool, "zn-1", "AUTOMATION_SKIP").await;
        skips
            .into_iter()
            .find(|e| e["reason"] == "previous_dose_pending")
    })
    .await
    .expect("a skip while the dose is pending");
    let first: String =
        sqlx::query_scalar("SELECT cmd_id FROM commands WHERE source = 'automation'")
            .fetch_one(pool)
            .await
            .expect("exactly one command while it is pending");
    assert_eq!(pending["pending_cmd_id"], json!(first));

    // COMMAND_TIMEOUT_SEC = 4: the bridge ends it TIMEOUT, and the engine doses again.
    assert_eq!(wait_count(pool, AUTOMATION_COMMANDS, 2).await, 2);
    let status: String = sqlx::query_scalar("SELECT status FROM commands WHERE cmd_id = $1")
        .bind(&first)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "TIMEOUT");
}

/// A phase whose hours are over gives way to the next, which starts when
/// the last one ended; after the last phase the recipe is COMPLETED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_advance_and_recipes_complete() {
    let w = world(2, 2, &[]).await;
    let pool = &w.db.pool;
    let two_phases = start_recipe(
        pool,
        "zn-1",
        &[
            (1.0, json!({"ph": setpoint(5.8)})),
            (24.0, json!({"ph": setpoint(6.0)})),
        ],
        Duration::minutes(90),
    )
    .await;
    let one_phase = start_recipe(
        pool,
        "zn-2",
        &[(1.0, json!({"ph": setpoint(5.8)}))],
        Duration::hours(2),
    )
    .await;

    let advanced = eventually(WAIT, || async {
        events(pool, "zn-1", "RECIPE_PHASE_ADVANCED").await.pop()
    })
    .await
    .expect("zn-1 advanced");
    assert_eq!(
        (
            advanced["from_phase"].as_i64(),
            advanced["to_phase"].as_i64()
        ),
        (Some(0), Some(1))
    );
    let (index, status, begun_ago): (i32, String, f64) = sqlx::query_as(
        "SELECT current_phase_index, status, EXTRACT(EPOCH FROM now() - phase_started_at)::float8 \
         FROM zone_recipe_instances WHERE id = $1",
    )
    .bind(two_phases)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((index, status.as_str()), (1, "ACTIVE"));
    // Phase 1 started when phase 0 ended, 30 minutes ago — not when noticed.
    assert!((1700.0..2000.0).contains(&begun_ago), "{begun_ago}");

    let completed = eventually(WAIT, || async {
        events(pool, "zn-2", "RECIPE_COMPLETED").await.pop()
    })
    .await;
    assert!(completed.is_some());
    let status: String =
        sqlx::query_scalar("SELECT status FROM zone_recipe_instances WHERE id = $1")
            .bind(one_phase)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(status, "COMPLETED");
    assert_eq!(events(pool, "zn-1", "RECIPE_PHASE_ADVANCED").await.len(), 1);
}
