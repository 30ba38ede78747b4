//! An instance killed mid-batch (its runtime dropped: no flush, no ack, no
//! DISCONNECT) and replaced loses nothing: its pending stream entries are
//! written by the next instance, once.

mod helpers;

use std::time::Duration;

use helpers::{TELEMETRY_ROWS, World, publish, reading};
use testkit::eventually;

// In the past: a reading more than HISTORY_MAX_FUTURE_SKEW_SEC ahead is refused.
const T0: i64 = 1_700_000_000;
const PH: &str = "hydro/gh-t/zn-a/nd-1/ph_sensor/telemetry";

async fn killed_mid_batch_then(restart_as: &str) {
    let world = World::new().await;
    // The first instance reads everything but would flush only after a minute.
    let (doomed, running) = world
        .start_doomed(
            "hl-a",
            &[
                ("TELEMETRY_FLUSH_MS", "60000"),
                ("TELEMETRY_BATCH_SIZE", "100000"),
            ],
        )
        .await;
    let nodes = world.publisher().await;
    let n = 300;
    futures::future::join_all((0..n).map(|i| publish(&nodes, PH, reading("PH", 6.0, T0 + i))))
        .await;
    // Every message is queued, and every entry (a burst of messages) is
    // pending with the first instance.
    let read_all = eventually(Duration::from_secs(20), || async {
        let (queued, _) = running.queue.stats().await.unwrap();
        let pending = running.queue.pending_count().await.unwrap();
        let entries = running.queue.entry_count().await.unwrap();
        (queued == n as u64 && pending == entries).then_some(())
    })
    .await;
    assert!(read_all.is_some(), "the first instance read every entry");
    assert_eq!(world.count(TELEMETRY_ROWS).await, 0, "nothing written yet");

    doomed.shutdown_background();

    world
        .start(restart_as, &[("HISTORY_CLAIM_IDLE_MS", "300")])
        .await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, n).await, n);
    let drained = eventually(Duration::from_secs(10), || async {
        let p = running.queue.pending_count().await.unwrap();
        let (len, _) = running.queue.stats().await.unwrap();
        (p == 0 && len == 0).then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "the queue is empty and nothing is pending"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.count(TELEMETRY_ROWS).await, n);
}

#[tokio::test]
async fn killed_mid_batch_and_restarted_loses_nothing() {
    killed_mid_batch_then("hl-a").await;
}

#[tokio::test]
async fn a_killed_instances_entries_are_claimed_by_another() {
    killed_mid_batch_then("hl-b").await;
}
