//! A simulated greenhouse for the scheduler's tests: a fresh database and a
//! private Mosquitto, node-sim (seeds zones `zn-1`… with irrigation and
//! light nodes, and answers their commands), mqtt-bridge (records the
//! answers), and scheduler instances the test starts and stops.

#![allow(dead_code, unused_imports)] // each test file uses its own part of the helpers

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::runtime::lease::LeaseGuard;
use common::settings::{FromEnv, Settings};
use scheduler::{App, SchedulerSettings};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{TestBroker, TestDb, env_vars, eventually};
use tokio_util::sync::CancellationToken;

/// Long enough for a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct World {
    pub db: TestDb,
    pub broker: TestBroker,
    pub stop: CancellationToken,
    vars: Vec<(String, String)>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A running scheduler with its own stop token.
pub struct Instance {
    pub stop: CancellationToken,
    pub lease: LeaseGuard,
}

/// node-sim with `zones` zones and `nodes` nodes, and mqtt-bridge.
pub async fn world(zones: usize, nodes: usize) -> World {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let vars: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.clone()),
        ("MQTT_HOST", "127.0.0.1".to_owned()),
        ("MQTT_PORT", broker.port.to_string()),
        ("MQTT_USER", testkit::backend_login().user),
        ("MQTT_PASS", testkit::backend_login().pass),
        ("HTTP_PORT", "0".to_owned()),
        ("NODE_DEFAULT_SECRET", "test-secret".to_owned()),
        ("SCHEDULER_TICK_SEC", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
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
        vars,
    }
}

impl World {
    /// Starts a scheduler instance; it stops with the world or its own token.
    pub async fn scheduler(&self) -> Instance {
        let vars = env_vars(&self.vars);
        let app = App::build(
            Settings::from_vars(vars.clone()).unwrap(),
            SchedulerSettings::from_vars(vars).unwrap(),
        )
        .await
        .expect("scheduler starts");
        let stop = self.stop.child_token();
        let lease = app.lease();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Instance { stop, lease }
    }
}

/// `HH:MM` (UTC, the seeded greenhouse's zone) of now + `offset`.
pub fn hhmm(offset: chrono::Duration) -> String {
    hhmm_at(Utc::now(), offset)
}

/// `HH:MM` of `now` + `offset`: with [`slot_of`] and the same `now`, the
/// schedule written and the slots expected agree across a minute boundary.
pub fn hhmm_at(now: DateTime<Utc>, offset: chrono::Duration) -> String {
    (now + offset).format("%H:%M").to_string()
}

/// The instant of the slot `HH:MM` of `now` + `offset` (today or yesterday).
pub fn slot_of(now: DateTime<Utc>, offset: chrono::Duration) -> DateTime<Utc> {
    let t = now + offset;
    t.date_naive()
        .and_hms_opt(chrono::Timelike::hour(&t), chrono::Timelike::minute(&t), 0)
        .unwrap()
        .and_utc()
}

pub use testkit::{count, wait_count, zone_event_payloads as events};

/// Waits until zone `zone` has at least `n` events of type `kind`; answers them.
pub async fn wait_events(pool: &PgPool, zone: &str, kind: &str, n: usize) -> Vec<Value> {
    let found = eventually(WAIT, || async {
        let e = events(pool, zone, kind).await;
        (e.len() >= n).then_some(e)
    })
    .await;
    match found {
        Some(e) => e,
        None => events(pool, zone, kind).await,
    }
}
