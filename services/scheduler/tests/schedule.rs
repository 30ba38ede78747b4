//! The scheduler against real PostgreSQL, Mosquitto, node-sim and
//! mqtt-bridge: slots fire once whatever the instances, missed slots are
//! caught up or skipped, lighting follows its window, bad specs are named.
//! The seeded greenhouse's time zone is UTC, so `HH:MM` of now ± minutes is
//! a slot that is (or is not yet) due.

mod helpers;

use chrono::{Duration, Utc};
use helpers::*;
use serde_json::json;
use testkit::eventually;

fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}

/// Two instances run; the four due irrigation slots of zn-1 and zn-2 fire
/// once each. The deciding instance is stopped: the other takes over,
/// asserts the lights again (zn-3), and fires no slot a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_fire_each_slot_once_and_a_takeover_refires_nothing() {
    // 3 zones × one node of each kind: irrigation nd-irrigation-10..12, light nd-light-13..15.
    let w = world(3, 15).await;
    let pool = &w.db.pool;
    let times = format!("{},{}", hhmm(minutes(-2)), hhmm(minutes(-1)));
    for zone in ["zn-1", "zn-2"] {
        let targets = json!({"irrigation": {"times": times, "duration_sec": 1}});
        schedule_recipe(pool, zone, targets, Duration::hours(1)).await;
    }
    let window = format!("{}-{}", hhmm(Duration::hours(1)), hhmm(Duration::hours(2)));
    lighting_recipe(pool, "zn-3", &window, Duration::hours(1)).await;

    let instances = [w.scheduler().await, w.scheduler().await];
    let done = "SELECT count(*) FROM commands WHERE source = 'scheduler' AND channel = 'pump_irrigation' AND status = 'DONE'";
    assert_eq!(
        wait_count(pool, done, 4).await,
        4,
        "every slot ran on its node"
    );
    assert_eq!(
        wait_events(pool, "zn-3", "LIGHTING_ASSERTED", 1)
            .await
            .len(),
        1
    );

    let leader = eventually(WAIT, || async {
        instances.iter().position(|i| i.lease.is_held())
    })
    .await
    .expect("one instance fires");
    instances[leader].stop.cancel();
    let asserted = wait_events(pool, "zn-3", "LIGHTING_ASSERTED", 2).await;
    assert_eq!(
        asserted.len(),
        2,
        "the new leader asserted the lights: it has run a tick"
    );
    assert_eq!(asserted[1]["state"], false);
    assert!(instances[1 - leader].lease.is_held());

    let sent =
        "SELECT count(*) FROM commands WHERE source = 'scheduler' AND channel = 'pump_irrigation'";
    assert_eq!(count(pool, sent).await, 4, "no slot fired twice");
    let fired: Vec<(String, String)> = sqlx::query_as(
        "SELECT f.cmd_id, c.status FROM schedule_fires f JOIN commands c ON c.cmd_id = f.cmd_id \
         WHERE f.kind = 'irrigation' AND f.outcome = 'fired'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(fired.len(), 4, "each fire names its command: {fired:?}");
    for zone in ["zn-1", "zn-2"] {
        let events = events(pool, zone, "IRRIGATION_FIRED").await;
        assert_eq!(events.len(), 2, "{zone}: {events:?}");
        assert_eq!(events[0]["params"]["duration_ms"], 1000);
        assert_eq!(events[0]["sent"], true);
    }
}

/// A slot missed by more than the catch-up age (15 min) is recorded as
/// skipped with an event; a younger one fires late; slots before the phase
/// began or still ahead are left alone. A restart changes none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_slots_are_caught_up_or_skipped_once() {
    // One zone with one node of each kind: nd-irrigation-4, nd-light-5.
    let w = world(1, 5).await;
    let pool = &w.db.pool;
    // One instant for the slots written and the slots expected: read twice,
    // the clock could cross a minute boundary in between.
    let now = Utc::now();
    let times = [
        Duration::hours(-4),
        Duration::hours(-2),
        minutes(-5),
        Duration::hours(2),
    ]
    .map(|offset| hhmm_at(now, offset))
    .join(",");
    // The lights are a marker: asserted once per instance start.
    let window = format!("{}-{}", hhmm(Duration::hours(1)), hhmm(Duration::hours(2)));
    let targets =
        json!({"irrigation": {"times": times, "duration_sec": 1}, "lighting": {"window": window}});
    schedule_recipe(pool, "zn-1", targets, Duration::hours(3)).await;

    let first = w.scheduler().await;
    let rows = "SELECT count(*) FROM schedule_fires WHERE kind = 'irrigation'";
    assert_eq!(wait_count(pool, rows, 2).await, 2);
    let fires: Vec<(chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
        "SELECT slot, outcome FROM schedule_fires WHERE kind = 'irrigation' ORDER BY slot",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        fires,
        [
            (slot_of(now, Duration::hours(-2)), "skipped".to_owned()),
            (slot_of(now, minutes(-5)), "fired".to_owned()),
        ]
    );
    // Fires are recorded during the tick, its events written at its end.
    let skipped = wait_events(pool, "zn-1", "SCHEDULE_SLOT_SKIPPED", 1).await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["kind"], "irrigation");
    assert!(
        skipped[0]["age_sec"].as_i64().unwrap() >= 7140,
        "{skipped:?}"
    );
    assert_eq!(skipped[0]["catch_up_max_age_sec"], 900);
    let fired = wait_events(pool, "zn-1", "IRRIGATION_FIRED", 1).await;
    assert_eq!(fired.len(), 1);
    assert!(fired[0]["late_sec"].as_i64().unwrap() >= 240, "{fired:?}");
    assert_eq!(
        wait_events(pool, "zn-1", "LIGHTING_ASSERTED", 1)
            .await
            .len(),
        1
    );

    first.stop.cancel();
    let _second = w.scheduler().await;
    assert_eq!(
        wait_events(pool, "zn-1", "LIGHTING_ASSERTED", 2)
            .await
            .len(),
        2
    );
    assert_eq!(
        count(pool, rows).await,
        2,
        "the restart recorded nothing new"
    );
    assert_eq!(events(pool, "zn-1", "SCHEDULE_SLOT_SKIPPED").await.len(), 1);
    assert_eq!(events(pool, "zn-1", "IRRIGATION_FIRED").await.len(), 1);
}

/// zn-1's window began a minute ago: its on edge fires. zn-2's window
/// (crossing midnight unless the clock is near it) is not open: its off
/// state is asserted. After a restart both states are asserted again and
/// no edge fires twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lighting_switches_at_its_edges_and_is_asserted_after_a_restart() {
    // 2 zones: light nodes nd-light-9 (zn-1) and nd-light-10 (zn-2).
    let w = world(2, 10).await;
    let pool = &w.db.pool;
    let open = format!("{}-{}", hhmm(minutes(-1)), hhmm(Duration::hours(2)));
    lighting_recipe(pool, "zn-1", &open, Duration::hours(1)).await;
    let closed = format!("{}-{}", hhmm(Duration::hours(1)), hhmm(Duration::hours(-1)));
    lighting_recipe(pool, "zn-2", &closed, minutes(30)).await;

    let first = w.scheduler().await;
    let switched = wait_events(pool, "zn-1", "LIGHTING_SWITCHED", 1).await;
    assert_eq!(switched.len(), 1);
    assert_eq!(switched[0]["params"]["state"], true);
    assert_eq!(switched[0]["node_uid"], "nd-light-9");
    let off = wait_events(pool, "zn-2", "LIGHTING_ASSERTED", 1).await;
    assert_eq!(
        (off[0]["state"].clone(), off[0]["reason"].clone()),
        (json!(false), json!("start"))
    );
    // The edge set the state: no separate assertion for zn-1.
    assert!(events(pool, "zn-1", "LIGHTING_ASSERTED").await.is_empty());
    let done = "SELECT count(*) FROM commands WHERE source = 'scheduler' AND cmd = 'set_relay' AND status = 'DONE'";
    assert_eq!(
        wait_count(pool, done, 2).await,
        2,
        "both light nodes answered"
    );

    first.stop.cancel();
    let _second = w.scheduler().await;
    let on = wait_events(pool, "zn-1", "LIGHTING_ASSERTED", 1).await;
    assert_eq!(
        (on[0]["state"].clone(), on[0]["reason"].clone()),
        (json!(true), json!("start"))
    );
    assert_eq!(
        wait_events(pool, "zn-2", "LIGHTING_ASSERTED", 2)
            .await
            .len(),
        2
    );
    assert_eq!(
        events(pool, "zn-1", "LIGHTING_SWITCHED").await.len(),
        1,
        "the edge fired once"
    );
}

/// A bad time spec is named in a zone event; the other zone fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_time_spec_is_reported_and_other_zones_fire() {
    let w = world(2, 10).await;
    let pool = &w.db.pool;
    schedule_recipe(
        pool,
        "zn-1",
        json!({"irrigation": {"times": "08:00,25:00"}}),
        Duration::hours(1),
    )
    .await;
    let good = json!({"irrigation": {"times": hhmm(minutes(-1)), "duration_sec": 1}});
    schedule_recipe(pool, "zn-2", good, Duration::hours(1)).await;

    let _scheduler = w.scheduler().await;
    let invalid = wait_events(pool, "zn-1", "SCHEDULE_INVALID", 1).await;
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0]["kind"], "irrigation");
    assert_eq!(
        invalid[0]["error"],
        "irrigation times: `25:00`: the hour must be 00-23"
    );
    assert_eq!(
        wait_events(pool, "zn-2", "IRRIGATION_FIRED", 1).await.len(),
        1
    );
    let zn1 = "SELECT count(*) FROM schedule_fires f JOIN zones z ON z.id = f.zone_id WHERE z.uid = 'zn-1'";
    assert_eq!(count(pool, zn1).await, 0);
}
