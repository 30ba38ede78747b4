//! Acknowledged only once durable: an instance that has received readings
//! but cannot append them to Redis (cut) is killed (its runtime dropped: no
//! flush, no DISCONNECT). The broker never had them acknowledged, so it
//! gives them to the instance that takes the session over, and every
//! reading is stored once. An instance that acknowledged on receipt would
//! have lost what it held when it died.
//!
//! A test binary of its own: it reads the process-wide metrics recorder.

mod helpers;

use std::time::Duration;

use helpers::{TELEMETRY_ROWS, World, proxied_redis, publish, reading};
use testkit::{eventually, metric_sum};

// In the past: a reading more than HISTORY_MAX_FUTURE_SKEW_SEC ahead is refused.
const T0: i64 = 1_700_000_000;
const PH: &str = "hydro/gh-t/zn-a/nd-1/ph_sensor/telemetry";
const RECEIVED: &str = "uplink_received_total{kind=\"telemetry\"}";

fn received() -> f64 {
    metric_sum(&common::runtime::http::metrics_handle().render(), RECEIVED)
}

#[tokio::test]
async fn readings_held_unappended_when_killed_are_delivered_again() {
    let world = World::new().await;
    let (proxy, proxied) = proxied_redis().await;
    let (doomed, _running) = world.start_doomed("hl-a", &[("REDIS_URL", &proxied)]).await;
    proxy.cut();

    let nodes = world.publisher().await;
    let n = 200;
    for i in 0..n {
        publish(&nodes, PH, reading("PH", 6.0, T0 + i)).await;
    }
    // The instance holds readings it has received but could not append.
    let held = eventually(Duration::from_secs(20), || async {
        (received() > 0.0).then_some(())
    })
    .await;
    assert!(held.is_some(), "the instance received readings");
    let mut redis = world.redis.get().await.expect("redis");
    let queued: i64 = deadpool_redis::redis::cmd("XLEN")
        .arg(&world.stream)
        .query_async(&mut redis)
        .await
        .expect("XLEN");
    assert_eq!(queued, 0, "nothing reached the queue");
    assert_eq!(world.count(TELEMETRY_ROWS).await, 0, "nothing written");

    doomed.shutdown_background();
    proxy.restore();
    world.start("hl-a", &[]).await;
    assert_eq!(
        world.wait_count(TELEMETRY_ROWS, n).await,
        n,
        "every reading stored (received {} times in all)",
        received()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.count(TELEMETRY_ROWS).await, n, "and only once");
}
