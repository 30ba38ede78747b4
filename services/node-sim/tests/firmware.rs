//! Firmware mode against real (private) brokers, with a tiny backend played
//! by the test: it answers time requests when told to and pushes NodeConfigs.
//! What is checked is what a backend would see on the brokers. This file:
//! an unbound node's first boot and seeding in firmware mode; binding,
//! moves and restarts are in `firmware_binding.rs`.

mod support;

use common::settings::DEV_NODE_SECRET;
use proto::payloads::{NodeConfig, NodeHello, NodeState, ResponseStatus, Status, Telemetry};
use proto::topics::TIME_REQUEST;
use serde_json::Value;
use support::firmware::{
    TimeResponder, boot, boot_custom, dose_command, responses, retained, wait_response, wait_seen,
};
use support::{Recorder, WAIT, new_cmd_id, now_secs, settings};
use testkit::{TestBroker, TestDb, eventually};

#[tokio::test]
async fn an_unbound_node_says_nothing_with_a_ts_until_it_has_the_time() {
    let broker = TestBroker::start().await;
    let backend = TimeResponder::start(&broker.url(), false).await;
    let all = Recorder::start(&broker.url(), "hydro/#").await;
    let r = boot(&broker.url()).await;
    let hw = r.node.hardware_id().to_owned();
    assert!(hw.starts_with("esp32-") && hw.len() == 18, "{hw}");
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");

    // Hello on the global topic, as the firmware sends it.
    let hello = wait_seen(&all, "node_hello", |s| s.topic == "hydro/node_hello").await;
    let hello = NodeHello::decode(&hello.payload).unwrap();
    assert_eq!(hello.hardware_id, hw);
    assert_eq!(hello.node_type.as_deref(), Some("ph"));
    assert!(hello.fw_version.is_some());
    assert!(hello.capabilities.contains(&"ph".to_owned()));
    assert!(!hello.capabilities.iter().any(|c| c == "config_update"));
    assert_eq!(hello.extra["message_type"], "node_hello");

    // Unanswered, it keeps asking; two requests span a telemetry period.
    eventually(WAIT, || async {
        (all.with_suffix(TIME_REQUEST).len() >= 3).then_some(())
    })
    .await
    .expect("time requests repeated");
    let request: Value = serde_json::from_slice(&all.with_suffix(TIME_REQUEST)[0].payload).unwrap();
    assert_eq!(request["message_type"], "time_request");

    // A command now is refused: the node cannot judge its ts.
    let cmd_id = new_cmd_id();
    let payload = dose_command(&cmd_id, now_secs(), DEV_NODE_SECRET);
    all.conn
        .publish(&format!("{temp}/pump_acid/command"), payload, false)
        .await
        .unwrap();
    let refused = wait_response(&all, &cmd_id, ResponseStatus::Error).await;
    assert_eq!(refused.error_code.as_deref(), Some("time_not_synced"));
    assert_eq!(responses(&all.seen.lock().unwrap(), &cmd_id).len(), 1);
    assert!(r.node.is_connected());
    assert!(!r.node.is_time_synced());
    {
        let seen = all.seen.lock().unwrap();
        let early: Vec<&str> = seen
            .iter()
            .filter(|s| {
                ["/status", "/telemetry", "/heartbeat", "/config_report"]
                    .iter()
                    .any(|k| s.topic.ends_with(k))
            })
            .map(|s| s.topic.as_str())
            .collect();
        assert!(
            early.is_empty(),
            "published before the time sync: {early:?}"
        );
    }

    // The backend answers: ONLINE (retained), its config report and
    // telemetry, all in the temp namespace.
    backend.answer();
    wait_seen(&all, "status", |s| s.topic == format!("{temp}/status")).await;
    let status = retained(&broker.url(), &format!("{temp}/status")).await;
    assert_eq!(
        Status::decode(&status.payload).unwrap().status,
        NodeState::Online
    );
    let ph = wait_seen(&all, "pH telemetry", |s| {
        s.topic == format!("{temp}/ph_sensor/telemetry")
    })
    .await;
    let t = Telemetry::decode(&ph.payload, 0).unwrap();
    assert!((t.ts - now_secs()).abs() < 60, "{}", t.ts);
    assert!((3.5..=9.0).contains(&t.value));
    let report = wait_seen(&all, "config_report", |s| {
        s.topic == format!("{temp}/config_report")
    })
    .await;
    let report = NodeConfig::decode(&report.payload).unwrap();
    assert_eq!(
        (
            report.node_id.as_str(),
            report.gh_uid.as_str(),
            report.zone_uid.as_str()
        ),
        (hw.as_str(), "gh-temp", "zn-temp")
    );
    assert!(report.channels.iter().any(|c| c.name == "pump_acid"));
    assert!(r.node.is_time_synced());

    // Synced, a command signed with the default secret runs.
    let cmd_id = new_cmd_id();
    all.conn
        .publish(
            &format!("{temp}/pump_acid/command"),
            dose_command(&cmd_id, now_secs(), DEV_NODE_SECRET),
            false,
        )
        .await
        .unwrap();
    let done = wait_response(&all, &cmd_id, ResponseStatus::Done).await;
    assert!(
        (done.ts / 1000 - now_secs()).abs() < 60,
        "ts in ms: {}",
        done.ts
    );
}

#[tokio::test]
async fn seeding_in_firmware_mode_writes_the_zones_but_no_node() {
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let greenhouse = format!("gh-t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let gh = greenhouse.clone();
    let r = boot_custom(
        &broker.url(),
        "seeded",
        None,
        move |sim| {
            sim.seed_db = true;
            sim.greenhouse = gh;
            sim.zones = 2;
            sim.nodes = 3;
        },
        settings(&[("DATABASE_URL", &db.url)]),
    )
    .await;
    let count = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
            n
        }
    };
    assert_eq!(count("SELECT count(*) FROM zones").await, 2);
    assert_eq!(count("SELECT count(*) FROM greenhouses").await, 1);
    assert_eq!(count("SELECT count(*) FROM nodes").await, 0);
    let (uid,): (String,) = sqlx::query_as("SELECT uid FROM greenhouses")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(uid, greenhouse);
    assert!(!r.node.namespace().node.is_empty());
    r.stop().await;
}
