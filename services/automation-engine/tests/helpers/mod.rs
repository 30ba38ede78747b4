//! A simulated greenhouse for the engine's tests: a fresh database and a
//! private Mosquitto, node-sim (it seeds zones `zn-1`… and nodes, and
//! answers commands: a dose moves its pH), mqtt-bridge (it records the
//! nodes' responses and times commands out) and the engine on port 0.
//!
//! history-logger is not run: the tests write `telemetry_last` themselves,
//! so a reading is exactly what the test needs.

#![allow(dead_code, unused_imports)] // each test file uses its own part of the helpers

use std::collections::HashMap;
use std::time::Duration;

use automation_engine::{App, AutomationSettings};
use chrono::Utc;
use common::settings::FromEnv;
use serde_json::Value;
use sqlx::PgPool;
use testkit::SimStack;

pub const SECRET: &str = "test-secret";
/// Long enough for a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// node-sim and mqtt-bridge ([`SimStack`]), and the engine when
/// [`world`] started it.
pub struct World {
    pub stack: SimStack,
    /// The in-process engine's base URL; `None` from [`greenhouse`].
    pub engine_url: Option<String>,
}

testkit::wraps!(World => stack: SimStack);

/// What the engine and the stack run with beyond [`testkit::service_vars`].
const VARS: &[(&str, &str)] = &[
    ("NODE_DEFAULT_SECRET", SECRET),
    // Above the longest dose (5 s): node-sim answers DONE when its pump stops.
    ("COMMAND_TIMEOUT_SEC", "20"),
    ("AUTOMATION_INTERVAL_SEC", "1"),
    ("AUTOMATION_EVENT_REPEAT_SEC", "0"),
];

/// node-sim with `zones` zones and `nodes` nodes (`extra` for its faults
/// and other settings), mqtt-bridge, and the engine.
pub async fn world(zones: usize, nodes: usize, extra: &[(&str, &str)]) -> World {
    let mut w = greenhouse(zones, nodes, extra).await;
    let (settings, automation) = testkit::settings(&w.vars, AutomationSettings::from_vars);
    let engine = App::build(settings, automation)
        .await
        .expect("engine starts");
    w.engine_url = Some(format!("http://127.0.0.1:{}", engine.port()));
    tokio::spawn(engine.run_until_stopped(w.stop.clone()));
    w
}

/// node-sim and mqtt-bridge only: the test runs the engines.
pub async fn greenhouse(zones: usize, nodes: usize, extra: &[(&str, &str)]) -> World {
    common::runtime::logging::init_for_tests();
    let more = [VARS, extra].concat();
    World {
        stack: SimStack::start(zones, nodes, &more).await,
        engine_url: None,
    }
}

/// A pH/EC setpoint as recipes write it.
pub fn setpoint(target: f64) -> Value {
    serde_json::json!({"target": target})
}

/// Starts, in `zone`, a one-phase recipe (48 h) holding pH at 5.8 from now.
pub async fn ph_recipe(pool: &PgPool, zone: &str) -> i64 {
    testkit::recipes::start_recipe(
        pool,
        zone,
        &[(48.0, serde_json::json!({"ph": setpoint(5.8)}))],
        chrono::Duration::zero(),
    )
    .await
}

/// Sets `zone`'s pH overrides (`capabilities.automation.ph`).
pub async fn ph_overrides(pool: &PgPool, zone: &str, overrides: Value) {
    let capabilities = serde_json::json!({"automation": {"ph": overrides}});
    testkit::recipes::set_capabilities(pool, zone, capabilities).await;
}

/// Lets `zone` dose pH back to back in short doses (no interval, 300 ms at
/// most), so each finished dose is followed by the next while pH stays high.
pub async fn back_to_back_doses(pool: &PgPool, zone: &str) {
    let overrides = serde_json::json!({"min_interval_sec": 0, "max_dose_ms": 300});
    ph_overrides(pool, zone, overrides).await;
}

/// Plays history-logger: the newest `metric` reading of `node`'s `channel`
/// is `value`, taken `age` ago.
pub async fn reading(
    pool: &PgPool,
    node: &str,
    channel: &str,
    metric: &str,
    value: f64,
    age: chrono::Duration,
    stable: Option<bool>,
) {
    sqlx::query(
        "INSERT INTO telemetry_last (node_id, channel, metric_type, zone_id, value, stable, ts) \
         SELECT id, $2, $3, zone_id, $4, $5, $6 FROM nodes WHERE uid = $1 \
         ON CONFLICT (node_id, channel, metric_type) DO UPDATE \
         SET value = EXCLUDED.value, stable = EXCLUDED.stable, ts = EXCLUDED.ts",
    )
    .bind(node)
    .bind(channel)
    .bind(metric)
    .bind(value)
    .bind(stable)
    .bind(Utc::now() - age)
    .execute(pool)
    .await
    .expect("reading");
}

/// A fresh, stable pH reading of node `node`.
pub async fn ph(pool: &PgPool, node: &str, value: f64) {
    reading(
        pool,
        node,
        "ph_sensor",
        "PH",
        value,
        chrono::Duration::seconds(1),
        Some(true),
    )
    .await;
}

pub use testkit::{count, wait_count, zone_event_payloads as events};

/// What node-sim's node `uid` reads on each sensor channel now.
pub async fn sim_values(sim_url: &str, uid: &str) -> HashMap<String, f64> {
    let nodes: Vec<Value> = reqwest::get(format!("{sim_url}/sim/nodes"))
        .await
        .expect("sim api")
        .json()
        .await
        .expect("json");
    let node = nodes
        .into_iter()
        .find(|n| n["uid"] == uid)
        .expect("node exists");
    serde_json::from_value(node["values"].clone()).expect("values")
}
