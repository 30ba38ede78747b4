//! The firmware's broker behaviour: a config/update moves a node, which
//! says ONLINE on its new broker; a stale one is ignored; cut off, a node
//! falls back, buffers at most 50 readings and sends them afterwards with
//! their original timestamps.

mod support;

use std::time::Duration;

use common::settings::DEV_NODE_SECRET;
use node_sim::App;
use node_sim::link::BUFFER_PACKETS;
use proto::payloads::{ConfigUpdate, NodeState, Status, Telemetry};
use proto::signing;
use support::{Recorder, WAIT, now_secs, settings, sim_settings};
use testkit::{StopOnDrop, TestBroker, eventually};

struct Running {
    nodes: std::sync::Arc<[node_sim::SimNode]>,
    port: u16,
    _stop: StopOnDrop,
}

/// node-sim with `sim`, once its (first) node is connected.
async fn run(sim: node_sim::SimSettings) -> Running {
    let app = App::build(sim, settings(&[])).await.expect("app builds");
    let nodes = app.nodes().clone();
    let port = app.port();
    let stop = StopOnDrop::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let node = &nodes[0];
    eventually(WAIT, || async { node.is_connected().then_some(()) })
        .await
        .unwrap();
    Running {
        nodes,
        port,
        _stop: stop,
    }
}

/// Two brokers and one node on the first, its config/updates recorded
/// there and its greenhouse's messages on the second.
struct OnB1 {
    b1: TestBroker,
    b2: TestBroker,
    on_b1: Recorder,
    on_b2: Recorder,
    r: Running,
    /// The node's config/update topic.
    topic: String,
}

async fn on_b1() -> OnB1 {
    let (b1, b2) = (TestBroker::start().await, TestBroker::start().await);
    let mut sim = sim_settings(1, 1);
    sim.broker_urls = Some(b1.url());
    let gh = sim.greenhouse.clone();
    let on_b1 = Recorder::start(&b1.url(), "nodes/#").await;
    let on_b2 = Recorder::start(&b2.url(), &format!("hydro/{gh}/#")).await;
    let r = run(sim).await;
    let topic = format!("nodes/{}/config/update", r.nodes[0].uid());
    OnB1 {
        b1,
        b2,
        on_b1,
        on_b2,
        r,
        topic,
    }
}

/// A move to `url`, signed with `secret` (unsigned when `None`).
fn signed_move(url: &str, ts: i64, secret: Option<&str>) -> Vec<u8> {
    let config = ConfigUpdate {
        mqtt_broker: url.to_owned(),
        broker_id: "b".into(),
        fallback: vec![],
        ts,
        sig: String::new(),
    };
    let config = match secret {
        Some(s) => signing::sign_config_update(s.as_bytes(), config),
        None => config,
    };
    serde_json::to_vec(&config).unwrap()
}

/// `sim_moves_refused_total{reason}` as node-sim's /metrics shows it (0 when
/// absent). The recorder is the process's, so tests compare before/after.
async fn refused(port: u16, reason: &str) -> u64 {
    let series = format!("sim_moves_refused_total{{reason=\"{reason}\"}}");
    testkit::scrape_metric(&format!("http://127.0.0.1:{port}"), &series).await as u64
}

#[tokio::test]
async fn a_config_update_moves_the_node_and_a_stale_one_is_ignored() {
    let t = on_b1().await;
    let node = &t.r.nodes[0];

    let move_to = |url: &str, ts: i64| signed_move(url, ts, Some(DEV_NODE_SECRET));
    let ts = now_secs();
    t.on_b1
        .conn
        .publish(&t.topic, move_to(&t.b2.url(), ts), true)
        .await
        .unwrap();

    let online = eventually(WAIT, || async {
        t.on_b2.with_suffix("/status").into_iter().find_map(|s| {
            let status = Status::decode(&s.payload).ok()?;
            (status.status == NodeState::Online && !s.retain).then_some(status)
        })
    })
    .await
    .expect("the node says ONLINE on its new broker");
    assert!(online.ts >= ts);
    eventually(WAIT, || async {
        (!t.on_b2.with_suffix("/telemetry").is_empty()).then_some(())
    })
    .await
    .expect("and sends its telemetry there");
    assert_eq!(node.link().broker_url(), t.b2.url());

    // A retained config/update older than the one applied (left on a
    // broker by an earlier move) does not move it back.
    let back = Recorder::start(&t.b2.url(), "nodes/#").await;
    back.conn
        .publish(&t.topic, move_to(&t.b1.url(), ts - 5), true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node.link().broker_url(), t.b2.url());
    assert!(node.is_connected());
}

#[tokio::test]
async fn unsigned_forged_stale_and_future_moves_are_refused_and_counted() {
    let t = on_b1().await;
    let node = &t.r.nodes[0];
    let now = now_secs();
    let forged_key = "not-the-node-secret";
    let cases = [
        ("unsigned", signed_move(&t.b2.url(), now, None)),
        (
            "bad_signature",
            signed_move(&t.b2.url(), now, Some(forged_key)),
        ),
        (
            "stale",
            signed_move(&t.b2.url(), now - 60, Some(DEV_NODE_SECRET)),
        ),
        (
            "future",
            signed_move(&t.b2.url(), now + 3_600, Some(DEV_NODE_SECRET)),
        ),
    ];
    let mut before = Vec::new();
    for (reason, _) in &cases {
        before.push(refused(t.r.port, reason).await);
    }
    for (_, payload) in &cases {
        t.on_b1
            .conn
            .publish(&t.topic, payload.clone(), true)
            .await
            .unwrap();
    }
    for ((reason, _), before) in cases.iter().zip(before) {
        eventually(WAIT, || async {
            (refused(t.r.port, reason).await > before).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("a {reason} move is counted"));
    }
    // None of them moved it; it is still connected to its broker.
    assert_eq!(node.link().broker_url(), t.b1.url());
    assert!(node.is_connected());
    assert!(
        t.on_b2.with_suffix("/status").is_empty(),
        "never went to b2"
    );

    // The test can fail: a genuine move, right after, is followed.
    t.on_b1
        .conn
        .publish(
            &t.topic,
            signed_move(&t.b2.url(), now_secs(), Some(DEV_NODE_SECRET)),
            true,
        )
        .await
        .unwrap();
    eventually(WAIT, || async {
        (node.link().broker_url() == t.b2.url() && node.is_connected()).then_some(())
    })
    .await
    .expect("a signed, fresh move is applied");
}

#[tokio::test]
async fn a_retained_move_older_than_the_window_is_still_followed_on_subscribe() {
    // The broker's retained copy is the last word on where a node belongs,
    // however long ago it was written (a node falling back reads it there).
    let t = on_b1().await;
    let node = &t.r.nodes[0];
    // Written an hour ago; the node learns it by subscribing again (on its
    // fallback broker it would be the first thing it reads).
    let old = signed_move(&t.b2.url(), now_secs() - 3_600, Some(DEV_NODE_SECRET));
    t.on_b1.conn.publish(&t.topic, old, true).await.unwrap();
    // Delivered live it is stale, and refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.link().broker_url(), t.b1.url());
    // Subscribing again makes the broker replay its retained copy, flagged.
    node.link()
        .connection()
        .subscribe(&t.topic, common::QoS::AtLeastOnce)
        .unwrap();
    eventually(WAIT, || async {
        (node.link().broker_url() == t.b2.url()).then_some(())
    })
    .await
    .expect("the replayed retained move is applied");
}

#[tokio::test]
async fn a_node_cut_off_falls_back_and_sends_its_buffered_readings_with_their_timestamps() {
    let (mut b1, b2) = (TestBroker::start().await, TestBroker::start().await);
    let mut sim = sim_settings(1, 1);
    sim.broker_urls = Some(format!("{},{}", b1.url(), b2.url()));
    sim.telemetry_interval_ms = 1_000;
    sim.fallback_after_ms = 2_500;
    let gh = sim.greenhouse.clone();
    let on_b2 = Recorder::start(&b2.url(), &format!("hydro/{gh}/#")).await;
    let r = run(sim).await;
    let node = &r.nodes[0];

    b1.kill();
    let cut_at = now_secs();
    // Cut off: it keeps reading into its buffer, then finds the fallback.
    // `arrived` is the node's own clock when it announced itself there: a
    // reading on b2 stamped earlier was made before it got there (whole
    // seconds on both; the observer's clock would add a second of doubt).
    let arrived = eventually(WAIT, || async {
        on_b2
            .with_suffix("/status")
            .iter()
            .filter(|s| !s.retain)
            .find_map(|s| Status::decode(&s.payload).ok())
            .map(|s| s.ts)
    })
    .await
    .expect("the node reaches its fallback broker");
    assert_eq!(node.link().broker_url(), b2.url());
    let buffered = eventually(WAIT, || async {
        let old: Vec<i64> = on_b2
            .with_suffix("/telemetry")
            .iter()
            .filter_map(|s| Telemetry::decode(&s.payload, 0).ok())
            .map(|t| t.ts)
            .filter(|ts| *ts < arrived)
            .collect();
        (!old.is_empty()).then_some(old)
    })
    .await
    .expect("readings made while cut off arrive afterwards");
    // With their original timestamps: from the cut, before the reconnect.
    assert!(
        buffered.iter().all(|ts| *ts >= cut_at - 2),
        "{buffered:?} vs cut at {cut_at}"
    );
    eventually(WAIT, || async {
        (node.link().buffered() == 0).then_some(())
    })
    .await
    .expect("the buffer empties");
}

#[tokio::test]
async fn the_offline_buffer_holds_at_most_50_readings() {
    let mut b1 = TestBroker::start().await;
    let mut sim = sim_settings(1, 1);
    sim.broker_urls = Some(b1.url());
    sim.telemetry_interval_ms = 20;
    let r = run(sim).await;
    let node = &r.nodes[0];
    b1.kill();
    eventually(WAIT, || async {
        (node.link().buffered() == BUFFER_PACKETS).then_some(())
    })
    .await
    .expect("the buffer fills");
    // Readings keep coming; the buffer never grows past its bound.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(node.link().buffered() <= BUFFER_PACKETS);
    }
    b1.resume().await;
    eventually(WAIT, || async {
        (node.is_connected() && node.link().buffered() == 0).then_some(())
    })
    .await
    .expect("sent after the reconnect");
}
