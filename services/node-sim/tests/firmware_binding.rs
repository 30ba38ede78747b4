//! Firmware mode against real (private) brokers: a pushed NodeConfig binds
//! the node and moves it to another broker, a restarted node keeps its
//! binding and an unbind sends it back to the temp namespace. The backend
//! (time service, configs) is played by the test; see `firmware.rs` for
//! the first boot.

mod support;

use common::settings::DEV_NODE_SECRET;
use proto::payloads::{NodeConfig, NodeHello, NodeState, ResponseStatus, Status};
use proto::topics::GLOBAL_NODE_HELLO;
use serde_json::{Value, json};
use support::firmware::{
    NEW_SECRET, TimeResponder, boot, boot_with, dose_command, ph_config, retained, wait_response,
    wait_seen,
};
use support::{Recorder, Seen, WAIT, new_cmd_id, now_secs};
use testkit::{TestBroker, eventually};

#[tokio::test]
async fn a_pushed_config_binds_and_moves_the_node_to_another_broker() {
    let (b1, b2) = (TestBroker::start().await, TestBroker::start().await);
    let _t1 = TimeResponder::start(&b1.url(), true).await;
    let _t2 = TimeResponder::start(&b2.url(), true).await;
    let on_b1 = Recorder::start(&b1.url(), "hydro/#").await;
    let on_b2 = Recorder::start(&b2.url(), "hydro/gh-1/zn-1/nd-x/#").await;
    let r = boot(&b1.url()).await;
    let hw = r.node.hardware_id().to_owned();
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");
    wait_seen(&on_b1, "ONLINE", |s| s.topic == format!("{temp}/status")).await;

    // A move by config/update is not for this node: it stays where it is.
    on_b1
        .conn
        .publish(
            &format!("nodes/{hw}/config/update"),
            json!({"mqtt_broker": b2.url(), "broker_id": "b2", "fallback": [], "ts": now_secs()})
                .to_string(),
            true,
        )
        .await
        .unwrap();

    let config = ph_config("nd-x", b2.port, json!({}), NEW_SECRET);
    on_b1
        .conn
        .publish(&format!("{temp}/config"), config, false)
        .await
        .unwrap();

    let ns = "hydro/gh-1/zn-1/nd-x";
    let report = wait_seen(&on_b2, "config_report", |s| {
        s.topic == format!("{ns}/config_report")
    })
    .await;
    let raw: Value = serde_json::from_slice(&report.payload).unwrap();
    assert!(raw.get("node_secret").is_none(), "{raw}");
    let report = NodeConfig::decode(&report.payload).unwrap();
    assert_eq!(report.node_id, "nd-x");
    assert!(report.fw_version.is_some());
    assert_eq!(report.mqtt["port"], b2.port);
    wait_seen(&on_b2, "ONLINE on b2", |s| {
        s.topic == format!("{ns}/status")
    })
    .await;
    let status = retained(&b2.url(), &format!("{ns}/status")).await;
    assert_eq!(
        Status::decode(&status.payload).unwrap().status,
        NodeState::Online
    );
    wait_seen(&on_b2, "telemetry on b2", |s| {
        s.topic == format!("{ns}/ph_sensor/telemetry")
    })
    .await;
    assert_eq!(r.node.broker_url().as_deref(), Some(b2.url().as_str()));
    assert_eq!(r.node.namespace().node, "nd-x");
    // It left b1 cleanly: no last will there.
    assert!(on_b1.with_suffix("/lwt").is_empty());

    let command = |cmd_id: &str, ts: i64, secret: &str| {
        let payload = dose_command(cmd_id, ts, secret);
        let conn = on_b2.conn.clone();
        async move {
            conn.publish(&format!("{ns}/pump_acid/command"), payload, false)
                .await
                .unwrap();
        }
    };

    let good = new_cmd_id();
    command(&good, now_secs(), NEW_SECRET).await;
    let ack = wait_response(&on_b2, &good, ResponseStatus::Ack).await;
    let done = wait_response(&on_b2, &good, ResponseStatus::Done).await;
    assert!(ack.ts <= done.ts);
    assert_eq!(r.node.commands_executed(), 1);

    let wrong = new_cmd_id();
    command(&wrong, now_secs(), DEV_NODE_SECRET).await;
    let refused = wait_response(&on_b2, &wrong, ResponseStatus::Error).await;
    assert_eq!(refused.error_code.as_deref(), Some("invalid_signature"));

    let stale = new_cmd_id();
    command(&stale, now_secs() - 30, NEW_SECRET).await;
    let refused = wait_response(&on_b2, &stale, ResponseStatus::Error).await;
    assert_eq!(refused.error_code.as_deref(), Some("timestamp_expired"));
    assert_eq!(r.node.commands_executed(), 1);
    assert_eq!(r.node.broker_url().as_deref(), Some(b2.url().as_str()));
}

#[tokio::test]
async fn a_restarted_node_keeps_its_binding_and_an_unbind_sends_it_back() {
    let broker = TestBroker::start().await;
    let _backend = TimeResponder::start(&broker.url(), true).await;
    let dir =
        std::env::temp_dir().join(format!("node-sim-state-{}", uuid::Uuid::new_v4().simple()));
    let seed = format!("t-{}", uuid::Uuid::new_v4().simple());
    let first = Recorder::start(&broker.url(), "hydro/#").await;
    let r = boot_with(&broker.url(), &seed, Some(&dir)).await;
    let hw = r.node.hardware_id().to_owned();
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");
    wait_seen(&first, "ONLINE", |s| s.topic == format!("{temp}/status")).await;

    // Bound in place (same broker): the report comes from the new namespace.
    let ns = "hydro/gh-1/zn-2/nd-y";
    let config = |gh: &str, zone: &str, node: &str| {
        json!({
            "node_id": node, "version": 3, "type": "ph", "gh_uid": gh, "zone_uid": zone,
            "channels": [{"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "unit": "pH"}],
            "wifi": {"configured": true},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 30},
            "node_secret": NEW_SECRET
        })
        .to_string()
    };
    first
        .conn
        .publish(
            &format!("{temp}/config"),
            config("gh-1", "zn-2", "nd-y"),
            false,
        )
        .await
        .unwrap();
    wait_seen(&first, "config_report", |s| {
        s.topic == format!("{ns}/config_report")
    })
    .await;
    // The same config naming another broker is "unchanged" to the firmware
    // (it compares without wifi/mqtt): reported again from here, not applied.
    let elsewhere =
        config("gh-1", "zn-2", "nd-y").replace(&format!("\"port\":{}", broker.port), "\"port\":1");
    assert!(
        elsewhere.contains("\"port\":1,") || elsewhere.contains("\"port\":1}"),
        "{elsewhere}"
    );
    first
        .conn
        .publish(&format!("{ns}/config"), elsewhere, false)
        .await
        .unwrap();
    eventually(WAIT, || async {
        (first.with_suffix(&format!("{ns}/config_report")).len() >= 2).then_some(())
    })
    .await
    .expect("a second config_report");
    for report in first.with_suffix(&format!("{ns}/config_report")) {
        let report = NodeConfig::decode(&report.payload).unwrap();
        assert_eq!(report.mqtt["port"], broker.port);
    }
    assert_eq!(r.node.broker_url(), Some(broker.url()));

    let saved = std::fs::read_to_string(dir.join(format!("{hw}.json"))).expect("config saved");
    assert!(
        saved.contains(NEW_SECRET) && saved.contains("nd-y"),
        "{saved}"
    );
    let listed: Vec<Value> =
        reqwest::get(format!("http://127.0.0.1:{}/sim/firmware-nodes", r.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(listed[0]["hardware_id"], hw);
    assert_eq!(listed[0]["bound"], true);
    assert_eq!(listed[0]["node"], "nd-y");
    r.stop().await;

    // Restarted with the same seed and state: bound at once, no hello.
    let second = Recorder::start(&broker.url(), "hydro/#").await;
    let r = boot_with(&broker.url(), &seed, Some(&dir)).await;
    assert_eq!(r.node.hardware_id(), hw);
    assert_eq!(r.node.namespace().node, "nd-y");
    let live = |s: &Seen, topic: &str| !s.retain && s.topic == topic;
    wait_seen(&second, "ONLINE after restart", |s| {
        live(s, &format!("{ns}/status"))
    })
    .await;
    assert!(
        second.with_suffix(GLOBAL_NODE_HELLO).is_empty(),
        "a bound node says no hello"
    );

    // An unbind (a temp config while bound): back to the temp namespace.
    second
        .conn
        .publish(
            &format!("{ns}/config"),
            config("gh-temp", "zn-temp", &hw),
            false,
        )
        .await
        .unwrap();
    wait_seen(&second, "ONLINE in the temp namespace", |s| {
        live(s, &format!("{temp}/status"))
    })
    .await;
    let hello = wait_seen(&second, "hello after the unbind", |s| {
        s.topic == GLOBAL_NODE_HELLO
    })
    .await;
    assert_eq!(NodeHello::decode(&hello.payload).unwrap().hardware_id, hw);
    assert!(r.node.namespace().is_temp());
    r.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
