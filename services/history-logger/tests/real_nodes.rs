//! What real (firmware) nodes need from history-logger, against real
//! PostgreSQL, Redis and several Mosquitto brokers: time requests answered on
//! the broker they came from, unbound nodes left to device-registry, and a
//! node status that only the node's current broker can change.

mod helpers;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use common::QoS;
use common::mqtt::MqttConfig;
use helpers::{TELEMETRY_ROWS, World, client, publish, reading};
use proto::payloads::TimeResponse;
use proto::topics::{TIME_REQUEST, TIME_RESPONSE};
use testkit::{TestBroker, eventually};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ND1: &str = "hydro/gh-t/zn-a/nd-1";

/// Waits until `sql` returns `want` (a text), and returns what it last saw.
async fn wait_text(world: &World, sql: &str, want: &str) -> Option<String> {
    let read = || async {
        sqlx::query_scalar::<_, Option<String>>(sql)
            .fetch_one(&world.db.pool)
            .await
            .expect("query")
    };
    eventually(Duration::from_secs(30), || async {
        (read().await.as_deref() == Some(want)).then_some(())
    })
    .await;
    read().await
}

/// Asks the time on `node`'s broker until history-logger answers there (it is
/// connected and subscribed), at most 60 s; `answers` receives the answers.
async fn logger_answers(
    node: &common::mqtt::MqttConnection,
    answers: &mut mpsc::Receiver<common::mqtt::Inbound>,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let asked = node
            .publish(TIME_REQUEST, r#"{"message_type":"time_request"}"#, false)
            .await;
        if asked.is_ok()
            && let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(1), answers.recv()).await
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn nd1_status(world: &World) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM nodes WHERE uid = 'nd-1'")
        .fetch_one(&world.db.pool)
        .await
        .expect("query")
}

#[tokio::test]
async fn time_requests_are_answered_once_on_the_broker_they_came_from() {
    let world = World::new().await;
    let (b2, b3) = (TestBroker::start().await, TestBroker::start().await);
    world.register(&[("mqtt2", &b2), ("mqtt3", &b3)]).await;
    // Two instances: the shared subscription gives each request to one.
    let a = world.start("hl-a", &[]).await;
    let b = world.start("hl-b", &[]).await;
    let stop = CancellationToken::new();
    let brokers = [("mqtt1", &world.broker), ("mqtt2", &b2), ("mqtt3", &b3)];
    let mut watchers = Vec::new();
    let mut nodes = Vec::new();
    for (id, broker) in brokers {
        let config = testkit::login(MqttConfig::new(id, &broker.url(), "test-client"));
        let (watcher, rx) =
            testkit::client::listen(config, &[TIME_RESPONSE], Duration::from_secs(10), &stop).await;
        testkit::client::settle(&watcher).await;
        watchers.push((watcher, rx));
        nodes.push(client(id, broker, None, &stop).await);
    }
    let before = Utc::now().timestamp();
    let per_broker = 3;
    for node in &nodes {
        for _ in 0..per_broker {
            publish(node, TIME_REQUEST, r#"{"message_type":"time_request"}"#).await;
        }
    }
    for (i, (_, rx)) in watchers.iter_mut().enumerate() {
        let mut answers = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while answers.len() < per_broker {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => answers.push(m),
                _ => break,
            }
        }
        // Nothing more comes: each request was answered once.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while let Ok(m) = rx.try_recv() {
            answers.push(m);
        }
        assert_eq!(answers.len(), per_broker, "answers on {}", brokers[i].0);
        for m in &answers {
            assert!(!m.retain);
            let answer = TimeResponse::decode(&m.payload).expect("a time response");
            assert_eq!(answer.message_type, "time_response");
            assert_eq!(answer.server_time, answer.unix_ts);
            assert!(
                (before..=Utc::now().timestamp()).contains(&answer.unix_ts),
                "{answer:?}"
            );
        }
    }
    let answered = a.stats.time_requests.load(Ordering::Relaxed)
        + b.stats.time_requests.load(Ordering::Relaxed);
    assert_eq!(answered, 3 * per_broker as u64);
    // Time requests are not uplink: nothing queued, nothing dead-lettered.
    assert!(world.dead_letters().await.is_empty());
    stop.cancel();
}

#[tokio::test]
async fn unbound_nodes_are_counted_not_stored_nor_dead_lettered() {
    let (world, running, nodes) = World::with_logger(&[]).await;
    let temp = "hydro/gh-temp/zn-temp/esp32-a1b2c3d4e5f6";
    publish(
        &nodes,
        &format!("{temp}/ph_sensor/telemetry"),
        reading("PH", 6.5, 1_700_000_000),
    )
    .await;
    publish(&nodes, &format!("{temp}/ph_sensor/telemetry"), "not json").await;
    publish(
        &nodes,
        &format!("{temp}/status"),
        r#"{"status":"ONLINE","ts":1800000000}"#,
    )
    .await;
    // A reading of a bound node after them: once it is stored, they were seen.
    publish(
        &nodes,
        "hydro/gh-t/zn-a/nd-1/ph_sensor/telemetry",
        reading("PH", 6.1, 1_700_000_000),
    )
    .await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 1).await, 1);
    assert_eq!(running.stats.unbound.load(Ordering::Relaxed), 3);
    assert_eq!(running.stats.refused.load(Ordering::Relaxed), 0);
    assert!(world.dead_letters().await.is_empty());
    assert_eq!(world.count("SELECT count(*) FROM nodes").await, 3);
    assert_eq!(
        world
            .count("SELECT count(*) FROM nodes WHERE status <> 'UNKNOWN'")
            .await,
        0
    );
}

#[tokio::test]
async fn only_the_nodes_current_broker_can_take_it_offline() {
    let world = World::new().await;
    let (mut b1, b2) = (TestBroker::start().await, TestBroker::start().await);
    world.register(&[("mqtt2", &b1), ("mqtt3", &b2)]).await;
    // Clean sessions: the logger subscribes afresh when B1 comes back.
    world
        .start("hl-a", &[("HISTORY_SESSION_EXPIRY_SEC", "0")])
        .await;
    let stop = CancellationToken::new();
    let on_b1 = client("mqtt2", &b1, None, &stop).await;
    let (tx, mut answers_b1) = mpsc::channel(64);
    let watch_b1 = client("mqtt2", &b1, Some(tx), &stop).await;
    watch_b1
        .subscribe(TIME_RESPONSE, QoS::AtLeastOnce)
        .expect("subscribe");
    let on_b2 = client("mqtt3", &b2, None, &stop).await;
    let now = Utc::now().timestamp();
    let online = format!(r#"{{"status":"ONLINE","ts":{now}}}"#);
    let observed = "SELECT observed_broker_id FROM nodes WHERE uid = 'nd-1'";
    let active = "SELECT count(*) FROM alerts WHERE type = 'node_offline' AND status = 'ACTIVE'";
    // A status of nd-2 on B1: statuses apply in arrival order, so once it is
    // stored, everything B1 delivered before it was applied.
    let barrier = || {
        let on_b1 = on_b1.clone();
        let world = &world;
        async move {
            sqlx::query("UPDATE nodes SET status = 'UNKNOWN' WHERE uid = 'nd-2'")
                .execute(&world.db.pool)
                .await
                .unwrap();
            let status = format!(
                r#"{{"status":"ONLINE","ts":{}}}"#,
                Utc::now().timestamp() + 1
            );
            publish(&on_b1, "hydro/gh-t/zn-a/nd-2/status", status).await;
            let sql = "SELECT count(*) FROM nodes WHERE uid = 'nd-2' AND status = 'ONLINE'";
            assert_eq!(world.wait_count(sql, 1).await, 1, "barrier");
        }
    };

    // nd-1 lives on B2.
    on_b2
        .publish(&format!("{ND1}/status"), online.clone(), true)
        .await
        .unwrap();
    publish(
        &on_b2,
        &format!("{ND1}/ph_sensor/telemetry"),
        reading("PH", 6.0, now),
    )
    .await;
    assert_eq!(
        wait_text(&world, observed, "mqtt3").await.as_deref(),
        Some("mqtt3")
    );
    assert_eq!(nd1_status(&world).await.as_deref(), Some("ONLINE"));

    // A retained last will on B1 (where it used to be) changes nothing...
    on_b1
        .publish(&format!("{ND1}/lwt"), "offline", true)
        .await
        .unwrap();
    barrier().await;
    assert_eq!(nd1_status(&world).await.as_deref(), Some("ONLINE"));
    // ... nor does B1 restarting with it retained. (Mosquitto gives no
    // retained message to a shared subscription, so here nothing is replayed;
    // a broker that replays delivers it like the live one above.)
    b1.stop();
    b1.resume().await;
    on_b1
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("reconnects");
    watch_b1
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("reconnects");
    // Once it answers there, the logger has resubscribed.
    assert!(
        logger_answers(&on_b1, &mut answers_b1).await,
        "logger back on B1"
    );
    barrier().await;
    assert_eq!(nd1_status(&world).await.as_deref(), Some("ONLINE"));
    assert_eq!(world.count(active).await, 0);
    assert_eq!(
        world
            .count("SELECT count(*) FROM zone_events WHERE type = 'NODE_OFFLINE'")
            .await,
        0
    );

    // Its last will on B2 takes it down...
    publish(&on_b2, &format!("{ND1}/lwt"), "offline").await;
    assert_eq!(world.wait_count(active, 1).await, 1);
    assert_eq!(nd1_status(&world).await.as_deref(), Some("OFFLINE"));
    // ... and its next reading there brings it back.
    publish(
        &on_b2,
        &format!("{ND1}/ph_sensor/telemetry"),
        reading("PH", 6.0, now + 1),
    )
    .await;
    assert_eq!(world.wait_count(active, 0).await, 0);
    assert_eq!(nd1_status(&world).await.as_deref(), Some("ONLINE"));
    assert_eq!(
        world
            .count("SELECT count(*) FROM zone_events WHERE type = 'NODE_ONLINE' AND payload_json->>'source' = 'telemetry'")
            .await,
        1
    );

    // An old retained ONLINE on B1 does not pull the observation back there.
    let stale = format!(r#"{{"status":"ONLINE","ts":{}}}"#, now - 3600);
    on_b1
        .publish(&format!("{ND1}/status"), stale, true)
        .await
        .unwrap();
    barrier().await;
    assert_eq!(
        sqlx::query_scalar::<_, Option<String>>(observed)
            .fetch_one(&world.db.pool)
            .await
            .unwrap()
            .as_deref(),
        Some("mqtt3")
    );
    // Whereas a fresh one does: the node moved back.
    let fresh = format!(
        r#"{{"status":"ONLINE","ts":{}}}"#,
        Utc::now().timestamp() + 5
    );
    publish(&on_b1, &format!("{ND1}/status"), fresh).await;
    assert_eq!(
        wait_text(&world, observed, "mqtt2").await.as_deref(),
        Some("mqtt2")
    );
    stop.cancel();
}
