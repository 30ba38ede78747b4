//! The ingest path end to end: MQTT → Redis stream → PostgreSQL, against real
//! PostgreSQL, Redis and Mosquitto. Telemetry here; the other node messages
//! (status, lwt, heartbeat, events) are in `node_messages.rs`.

mod helpers;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::mqtt::{MqttConfig, MqttConnection};
use common::settings::FromEnv;
use helpers::{TELEMETRY_ROWS, World, publish, reading};
use proto::payloads::Telemetry;
use tokio_util::sync::CancellationToken;

// In the past: a reading more than HISTORY_MAX_FUTURE_SKEW_SEC ahead is refused.
const T0: i64 = 1_700_000_000;
const PH: &str = "hydro/gh-t/zn-a/nd-1/ph_sensor/telemetry";

async fn publish_distinct(nodes: &MqttConnection, n: i64) {
    futures::future::join_all((0..n).map(|i| publish(nodes, PH, reading("PH", 6.0, T0 + i)))).await;
}

#[tokio::test]
async fn a_burst_of_distinct_readings_lands_exactly_once() {
    let (world, _, nodes) = World::with_logger(&[("TELEMETRY_BATCH_SIZE", "50")]).await;
    let n = 2_000;
    publish_distinct(&nodes, n).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, n).await, n);
    assert_eq!(
        world
            .count("SELECT count(DISTINCT ts) FROM telemetry_samples")
            .await,
        n
    );
    assert!(world.dead_letters().await.is_empty());
    let last: f64 = sqlx::query_scalar("SELECT extract(epoch FROM ts)::float8 FROM telemetry_last")
        .fetch_one(&world.db.pool)
        .await
        .unwrap();
    assert_eq!(last as i64, T0 + n - 1);
}

/// A telemetry message by node, channel, metric and `ts`: what makes a row.
type ReadingKey = (String, String, String, i64);

fn reading_key(m: &common::mqtt::Inbound) -> ReadingKey {
    let t = Telemetry::decode(&m.payload, 0).expect("node-sim follows the contract");
    let levels: Vec<&str> = m.topic.split('/').collect();
    (
        levels[3].to_owned(),
        levels[4].to_owned(),
        t.metric_type.as_str().to_owned(),
        t.ts,
    )
}

async fn stored_readings(pool: &sqlx::PgPool) -> Vec<ReadingKey> {
    sqlx::query_as(
        "SELECT n.uid, s.channel, s.metric_type, extract(epoch FROM s.ts)::int8
           FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_burst_from_node_sim_lands_exactly_once() {
    let world = World::new().await;
    world.start("hl-a", &[]).await;
    // Watch what the simulated nodes publish, to know what must land.
    let watch_stop = CancellationToken::new();
    let (watcher, mut seen_rx) = testkit::client::listen(
        testkit::login(MqttConfig::new("mqtt1", &world.broker.url(), "test-watch")),
        &["hydro/+/+/+/+/telemetry"],
        Duration::from_secs(10),
        &watch_stop,
    )
    .await;
    testkit::client::settle(&watcher).await;

    let sim_vars = testkit::service_vars(
        &world.db.url,
        world.broker.port,
        &[
            ("SIM_SEED_DB", "true"),
            ("SIM_ZONES", "2"),
            ("SIM_NODES", "10"),
            // One publication per node per second: readings of one channel never share a `ts`.
            ("SIM_TELEMETRY_INTERVAL_MS", "1000"),
        ],
    );
    let (settings, sim) = testkit::settings(&sim_vars, node_sim::SimSettings::from_vars);
    let sim = node_sim::App::build(sim, settings)
        .await
        .expect("node-sim builds");
    world.broker.sync_node_accounts(&world.db.pool).await;
    let sim_stop = CancellationToken::new();
    let sim_task = tokio::spawn(sim.run_until_stopped(sim_stop.clone()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim_stop.cancel();
    let _ = sim_task.await;

    // What the watcher saw and what was stored both trail the last
    // publications by a moment: poll until they agree, not one look after a
    // pause (a reading the watcher had not yet seen would fail the test).
    let mut expected = HashSet::new();
    let pool = &world.db.pool;
    let agreed = testkit::eventually(Duration::from_secs(30), || {
        while let Ok(m) = seen_rx.try_recv() {
            expected.insert(reading_key(&m));
        }
        let seen = expected.clone();
        async move {
            let stored = stored_readings(pool).await;
            let once = stored.len() == stored.iter().collect::<HashSet<_>>().len();
            (once && stored.into_iter().collect::<HashSet<_>>() == seen).then_some(())
        }
    })
    .await;
    watch_stop.cancel();
    assert!(
        expected.len() >= 20,
        "node-sim published only {}",
        expected.len()
    );
    if agreed.is_none() {
        let stored = stored_readings(pool).await;
        let rows = stored.len();
        let stored: HashSet<_> = stored.into_iter().collect();
        panic!(
            "not every reading node-sim published was stored exactly once: {} seen, {rows} rows; \
             never stored {:?}; stored, never seen {:?}",
            expected.len(),
            expected.difference(&stored).take(5).collect::<Vec<_>>(),
            stored.difference(&expected).take(5).collect::<Vec<_>>(),
        );
    }
    // The simulated nodes' status and heartbeats reached `nodes` too.
    assert!(
        world
            .count("SELECT count(*) FROM nodes WHERE status <> 'UNKNOWN'")
            .await
            >= 10
    );
}

#[tokio::test]
async fn the_same_message_twice_gives_one_row() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    let message = reading("PH", 6.1, T0);
    publish(&nodes, PH, message.clone()).await;
    publish(&nodes, PH, message.clone()).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 1).await, 1);
    // Again, in a later batch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&nodes, PH, message).await;
    publish(&nodes, PH, reading("PH", 6.2, T0 + 1)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 2).await, 2);
    assert_eq!(
        world
            .count("SELECT count(*) FROM telemetry_samples WHERE value = 6.1")
            .await,
        1
    );
    // A redelivery is absorbed, not refused as a second reading (its dead
    // letter would be pushed just after the batch commits).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.dead_letters().await, Vec::<serde_json::Value>::new());
}

#[tokio::test]
async fn two_instances_share_the_work_and_store_each_message_once() {
    let world = World::new().await;
    let a = world.start("hl-a", &[("TELEMETRY_BATCH_SIZE", "20")]).await;
    let b = world.start("hl-b", &[("TELEMETRY_BATCH_SIZE", "20")]).await;
    let nodes = world.publisher().await;
    let n = 1_000;
    publish_distinct(&nodes, n).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, n).await, n);
    let (took_a, took_b) = (
        a.stats.accepted.load(Ordering::Relaxed),
        b.stats.accepted.load(Ordering::Relaxed),
    );
    assert_eq!(
        took_a + took_b,
        n as u64,
        "each message taken by one instance"
    );
    assert!(took_a > 0 && took_b > 0, "both worked: {took_a} / {took_b}");
}

#[tokio::test]
async fn every_bad_input_class_is_dropped_with_its_reason_and_good_ones_land() {
    let (world, running, nodes) = World::with_logger(&[]).await;
    let long_level = "x".repeat(200);
    let bad_topic = format!("hydro/gh-t/zn-a/{long_level}/ph_sensor/telemetry");
    let oversized = format!(
        r#"{{"metric_type":"PH","value":6.5,"ts":{T0},"unit":"{}"}}"#,
        " ".repeat(20_000)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (PH, "not json".into(), "invalid_json"),
        (
            PH,
            r#"{"metric_type":"PH","value":6.5}"#.into(),
            "invalid_field",
        ),
        (
            PH,
            r#"{"metric_type":"PRESSURE","value":1,"ts":1800000000}"#.into(),
            "unknown_metric",
        ),
        (
            PH,
            r#"{"metric_type":"PH","value":1e400,"ts":1800000000}"#.into(),
            "non_finite_value",
        ),
        (&bad_topic, reading("PH", 6.5, T0), "bad_topic"),
        (
            "hydro/gh-t/zn-a/nd-ghost/ph_sensor/telemetry",
            reading("PH", 6.5, T0),
            "node_id_not_found",
        ),
        (
            "hydro/gh-t/zn-ghost/nd-1/ph_sensor/telemetry",
            reading("PH", 6.5, T0),
            "zone_id_not_found",
        ),
    ];
    for (i, (topic, payload, _)) in cases.iter().enumerate() {
        publish(&nodes, PH, reading("PH", 7.0, T0 + 100 + i as i64)).await;
        publish(&nodes, topic, payload.clone()).await;
    }
    publish(&nodes, PH, reading("PH", 7.0, T0 + 200)).await;
    let good = cases.len() as i64 + 1;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, good).await, good);
    let letters = helpers_wait_letters(&world, cases.len()).await;
    let mut reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    let mut want: Vec<&str> = cases.iter().map(|c| c.2).collect();
    want.sort_unstable();
    assert_eq!(reasons, want);
    let ghost = letters
        .iter()
        .find(|l| l["reason"] == "node_id_not_found")
        .unwrap();
    assert_eq!(
        ghost["topic"],
        "hydro/gh-t/zn-a/nd-ghost/ph_sensor/telemetry"
    );
    assert_eq!(ghost["payload"], reading("PH", 6.5, T0));
    assert!(ghost["at"].is_string());
    assert_eq!(running.stats.refused.load(Ordering::Relaxed), 5);

    // An oversized message never reaches the logger: the broker refuses it at
    // publish time (message_size_limit = MAX_PAYLOAD_BYTES, PUBACK 0x95).
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let big = helpers::client("big", &world.broker, None, &stop).await;
    assert!(
        big.publish(PH, oversized.into_bytes(), false)
            .await
            .is_err(),
        "the broker refuses an oversized publish"
    );
    publish(&nodes, PH, reading("PH", 7.0, T0 + 201)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, good + 1).await, good + 1);
    assert_eq!(running.stats.refused.load(Ordering::Relaxed), 5);
    assert_eq!(world.dead_letters().await.len(), cases.len());
    // Nothing was written against another node or zone.
    assert_eq!(
        world
            .count("SELECT count(*) FROM telemetry_samples WHERE value <> 7.0")
            .await,
        0
    );
}

async fn helpers_wait_letters(world: &World, n: usize) -> Vec<serde_json::Value> {
    testkit::eventually(Duration::from_secs(20), || async {
        let l = world.dead_letters().await;
        (l.len() >= n).then_some(l)
    })
    .await
    .unwrap_or_default()
}

#[tokio::test]
async fn telemetry_last_never_goes_back_in_time() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    publish(&nodes, PH, reading("PH", 6.0, T0 + 10)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 1).await, 1);
    publish(&nodes, PH, reading("PH", 5.0, T0)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 2).await, 2);
    assert_eq!(world.last().await, Some((6.0, T0 + 10)));
    // Newer then older inside one batch.
    publish(&nodes, PH, reading("PH", 6.5, T0 + 20)).await;
    publish(&nodes, PH, reading("PH", 4.0, T0 + 15)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 4).await, 4);
    assert_eq!(world.last().await, Some((6.5, T0 + 20)));
}
