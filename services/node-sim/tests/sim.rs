//! The simulator against a real (private) Mosquitto and PostgreSQL, checked
//! the way the backend sees it: messages on the broker, HTTP, rows. This
//! file: nodes coming online and reporting, and how they go away; commands
//! are in `commands.rs`, seeding the database in `seeding.rs`.

mod support;

use proto::payloads::{Heartbeat, MetricType, NodeState, Status, Telemetry};
use serde_json::Value;
use support::{Recorder, TestSim, WAIT, now_secs};
use testkit::eventually;

#[tokio::test]
async fn nodes_come_online_and_report() {
    let mut sim = TestSim::start().await;
    let uids: Vec<String> = sim.nodes.iter().map(|n| n.uid().to_owned()).collect();
    assert_eq!(
        uids,
        ["nd-ph-1", "nd-ph-2", "nd-ph-3", "nd-ec-4", "nd-ec-5"]
    );
    sim.wait_all_connected().await;

    // A client that subscribes now gets every node's ONLINE status, retained.
    let late = Recorder::start(&sim.broker.url(), &format!("hydro/{}/+/+/status", sim.gh)).await;
    let retained = eventually(WAIT, || async {
        let s = late.with_suffix("/status");
        (s.len() >= 5).then_some(s)
    })
    .await
    .expect("a retained status per node");
    for s in &retained {
        assert!(s.retain, "{}", s.topic);
        assert_eq!(
            Status::decode(&s.payload).unwrap().status,
            NodeState::Online
        );
    }
    assert!(
        retained
            .iter()
            .any(|s| s.topic == format!("hydro/{}/zn-1/nd-ph-1/status", sim.gh))
    );
    assert!(
        retained
            .iter()
            .any(|s| s.topic == format!("hydro/{}/zn-2/nd-ec-5/status", sim.gh))
    );

    // Telemetry that the backend accepts, from sensor channels only.
    let ph_topic = format!("hydro/{}/zn-1/nd-ph-1/ph_sensor/telemetry", sim.gh);
    let ph = eventually(WAIT, || async {
        sim.recorder
            .with_suffix("/telemetry")
            .into_iter()
            .find(|s| s.topic == ph_topic)
    })
    .await
    .expect("pH telemetry");
    let t = Telemetry::decode(&ph.payload, 0).unwrap();
    assert_eq!(t.metric_type, MetricType::Ph);
    assert_eq!(t.unit.as_deref(), Some("pH"));
    assert_eq!(t.stable, Some(true));
    assert!((5.0..=7.0).contains(&t.value), "{}", t.value);
    assert!((t.ts - now_secs()).abs() < 60);
    let ec = eventually(WAIT, || async {
        sim.recorder
            .with_suffix("/nd-ec-4/ec_sensor/telemetry")
            .into_iter()
            .next()
    })
    .await
    .expect("EC telemetry");
    assert_eq!(
        Telemetry::decode(&ec.payload, 0).unwrap().metric_type,
        MetricType::Ec
    );
    for s in sim.recorder.with_suffix("/telemetry") {
        assert!(
            !s.topic.contains("/pump_"),
            "actuators send no telemetry: {}",
            s.topic
        );
        Telemetry::decode(&s.payload, 0).expect("valid telemetry");
    }
    let hb = eventually(WAIT, || async {
        sim.recorder.with_suffix("/heartbeat").into_iter().next()
    })
    .await
    .expect("heartbeat");
    let hb = Heartbeat::decode(&hb.payload).unwrap();
    assert!((-80..=-40).contains(&hb.rssi.unwrap()));
    assert!((90_000..=110_000).contains(&hb.free_heap));

    // HTTP: health with mqtt up, the node list with readings.
    let health = sim.http.get(sim.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["dependencies"]["mqtt"]["state"], "up");
    assert!(body["dependencies"].get("postgres").is_none());
    let view = sim.node_view("nd-ph-1").await;
    assert_eq!(view["zone"], "zn-1");
    assert_eq!(view["kind"], "ph");
    assert_eq!(view["connected"], true);
    assert_eq!(view["channels"][1]["channel"], "pump_acid");
    assert_eq!(view["channels"][1]["type"], "actuator");
    assert!(view["values"]["ph_sensor"].as_f64().is_some());

    sim.stop().await;
}

#[tokio::test]
async fn abort_leaves_the_last_will_and_stop_does_not() {
    let mut sim = TestSim::connected().await;
    sim.node("nd-ph-3").abort();
    let lwt = eventually(WAIT, || async {
        sim.recorder.with_suffix("/lwt").into_iter().next()
    })
    .await
    .expect("last will published");
    assert_eq!(lwt.topic, format!("hydro/{}/zn-3/nd-ph-3/lwt", sim.gh));
    assert_eq!(lwt.payload, b"offline");

    sim.stop().await;
    // Clean stop: OFFLINE status from the others, no more wills.
    let offline = eventually(WAIT, || async {
        let s: Vec<_> = sim
            .recorder
            .with_suffix("/status")
            .into_iter()
            .filter(|s| Status::decode(&s.payload).is_ok_and(|s| s.status == NodeState::Offline))
            .collect();
        (s.len() >= 4).then_some(s)
    })
    .await
    .expect("OFFLINE from every stopped node");
    assert!(offline.iter().all(|s| !s.topic.contains("nd-ph-3")));
    assert_eq!(sim.recorder.with_suffix("/lwt").len(), 1);
}
