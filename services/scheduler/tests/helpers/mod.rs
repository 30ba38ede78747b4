//! A simulated greenhouse for the scheduler's tests: a fresh database and a
//! private Mosquitto, node-sim (seeds zones `zn-1`… with irrigation and
//! light nodes, and answers their commands), mqtt-bridge (records the
//! answers), and scheduler instances the test starts and stops.

#![allow(dead_code, unused_imports)] // each test file uses its own part of the helpers

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::runtime::lease::LeaseGuard;
use common::settings::FromEnv;
use scheduler::{App, SchedulerSettings};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{SimStack, eventually};
use tokio_util::sync::CancellationToken;

/// Long enough for a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// node-sim and mqtt-bridge ([`SimStack`]); schedulers come and go.
pub struct World(SimStack);

testkit::wraps!(World => 0: SimStack);

/// A running scheduler with its own stop token.
pub struct Instance {
    pub stop: CancellationToken,
    pub lease: LeaseGuard,
}

/// node-sim with `zones` zones and `nodes` nodes, and mqtt-bridge.
pub async fn world(zones: usize, nodes: usize) -> World {
    common::runtime::logging::init_for_tests();
    let more = [
        ("NODE_DEFAULT_SECRET", "test-secret"),
        ("SCHEDULER_TICK_SEC", "1"),
    ];
    World(SimStack::start(zones, nodes, &more).await)
}

impl World {
    /// Starts a scheduler instance; it stops with the world or its own token.
    pub async fn scheduler(&self) -> Instance {
        let (settings, scheduler) = testkit::settings(&self.vars, SchedulerSettings::from_vars);
        let app = App::build(settings, scheduler)
            .await
            .expect("scheduler starts");
        let stop = self.stop.child_token();
        let lease = app.lease();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Instance { stop, lease }
    }
}

/// Starts, in `zone`, a one-phase recipe (48 h) whose `schedule` (its
/// `lighting` or `irrigation` targets) began `phase_age` ago.
pub async fn schedule_recipe(
    pool: &PgPool,
    zone: &str,
    schedule: Value,
    phase_age: chrono::Duration,
) {
    testkit::recipes::start_recipe(pool, zone, &[(48.0, schedule)], phase_age).await;
}

/// [`schedule_recipe`] of a lighting `window` (`HH:MM-HH:MM`).
pub async fn lighting_recipe(pool: &PgPool, zone: &str, window: &str, phase_age: chrono::Duration) {
    let schedule = serde_json::json!({"lighting": {"window": window}});
    schedule_recipe(pool, zone, schedule, phase_age).await;
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
