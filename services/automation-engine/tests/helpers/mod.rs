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
use common::settings::{FromEnv, Settings};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{TestBroker, TestDb, env_vars};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret";
/// Long enough for a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct World {
    pub db: TestDb,
    pub broker: TestBroker,
    pub stop: CancellationToken,
    pub sim_url: String,
    /// The in-process engine's base URL; `None` from [`greenhouse`].
    pub engine_url: Option<String>,
    /// The variables the services were started with.
    pub vars: Vec<(String, String)>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The variables every process of the world shares.
pub fn base_vars(db: &TestDb, broker: &TestBroker) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db.url.clone()),
        ("MQTT_HOST", "127.0.0.1".to_owned()),
        ("MQTT_PORT", broker.port.to_string()),
        ("MQTT_USER", testkit::backend_login().user),
        ("MQTT_PASS", testkit::backend_login().pass),
        ("HTTP_PORT", "0".to_owned()),
        ("NODE_DEFAULT_SECRET", SECRET.to_owned()),
        // Above the longest dose (5 s): node-sim answers DONE when its pump stops.
        ("COMMAND_TIMEOUT_SEC", "20".to_owned()),
        ("AUTOMATION_INTERVAL_SEC", "1".to_owned()),
        ("AUTOMATION_EVENT_REPEAT_SEC", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// node-sim with `zones` zones and `nodes` nodes (`extra` for its faults
/// and other settings), mqtt-bridge, and the engine.
pub async fn world(zones: usize, nodes: usize, extra: &[(&str, &str)]) -> World {
    let mut w = greenhouse(zones, nodes, extra).await;
    let vars = env_vars(&w.vars);
    let engine = App::build(
        Settings::from_vars(vars.clone()).unwrap(),
        AutomationSettings::from_vars(vars).unwrap(),
    )
    .await
    .expect("engine starts");
    w.engine_url = Some(format!("http://127.0.0.1:{}", engine.port()));
    tokio::spawn(engine.run_until_stopped(w.stop.clone()));
    w
}

/// node-sim and mqtt-bridge only: the test runs the engines.
pub async fn greenhouse(zones: usize, nodes: usize, extra: &[(&str, &str)]) -> World {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let mut vars = base_vars(&db, &broker);
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let mut sim_vars = vars.clone();
    sim_vars.extend([
        ("SIM_SEED_DB".to_owned(), "true".to_owned()),
        ("SIM_ZONES".to_owned(), zones.to_string()),
        ("SIM_NODES".to_owned(), nodes.to_string()),
    ]);
    let sim_vars = env_vars(&sim_vars);
    let sim = node_sim::App::build(
        node_sim::SimSettings::from_vars(sim_vars.clone()).unwrap(),
        Settings::from_vars(sim_vars).unwrap(),
    )
    .await
    .expect("node-sim starts");
    broker.sync_node_accounts(&db.pool).await;
    let sim_url = format!("http://127.0.0.1:{}", sim.port());
    let sim_nodes = sim.nodes().clone();
    tokio::spawn(sim.run_until_stopped(stop.clone()));
    // Refused until their accounts existed, the nodes retry with a growing
    // backoff: a command sent before one is back would be lost.
    testkit::eventually(testkit::COUNT_WAIT, || async {
        sim_nodes.iter().all(|n| n.is_connected()).then_some(())
    })
    .await
    .expect("node-sim's nodes log in with their accounts");
    let bridge = mqtt_bridge::App::build(
        Settings::from_vars(env_vars(&vars)).unwrap(),
        mqtt_bridge::BridgeSettings::from_vars(env_vars(&vars)).unwrap(),
    )
    .await
    .expect("bridge starts");
    tokio::spawn(bridge.run_until_stopped(stop.clone()));
    World {
        db,
        broker,
        stop,
        sim_url,
        engine_url: None,
        vars,
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

/// Lets `zone` dose pH back to back in short doses (no interval, 300 ms at
/// most), so each finished dose is followed by the next while pH stays high.
pub async fn back_to_back_doses(pool: &PgPool, zone: &str) {
    testkit::recipes::set_capabilities(
        pool,
        zone,
        serde_json::json!({"automation": {"ph": {"min_interval_sec": 0, "max_dose_ms": 300}}}),
    )
    .await;
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
