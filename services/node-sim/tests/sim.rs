//! The simulator against a real (private) Mosquitto and PostgreSQL, checked
//! the way the backend sees it: messages on the broker, HTTP, rows.

mod support;

use node_sim::layout::layout;
use node_sim::seed::seed;
use proto::payloads::{
    CommandResponse, Heartbeat, MetricType, NodeState, ResponseStatus, Status, Telemetry,
};
use serde_json::{Value, json};
use support::{Recorder, TestSim, WAIT, new_cmd_id, now_secs, settings, sim_settings};
use testkit::{TestDb, eventually};

fn statuses(r: &[CommandResponse]) -> Vec<ResponseStatus> {
    r.iter().map(|r| r.status).collect()
}

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
async fn signed_command_is_acked_then_done() {
    let mut sim = TestSim::start().await;
    sim.wait_all_connected().await;
    let id = new_cmd_id();
    sim.send(
        "nd-ph-1",
        "pump_acid",
        &id,
        "run_pump",
        json!({"duration_ms": 100}),
        now_secs(),
    )
    .await;
    let r = sim.recorder.wait_responses(&id, 2).await;
    assert_eq!(statuses(&r), [ResponseStatus::Ack, ResponseStatus::Done]);
    assert!(
        (r[0].ts - chrono::Utc::now().timestamp_millis()).abs() < 60_000,
        "ts in ms"
    );
    assert!(r[0].ts <= r[1].ts);
    assert_eq!(sim.node("nd-ph-1").commands_executed(), 1);

    // A dose moves the pH down, visibly.
    let before = sim.node_view("nd-ph-1").await["values"]["ph_sensor"]
        .as_f64()
        .unwrap();
    let id = new_cmd_id();
    sim.send(
        "nd-ph-1",
        "pump_acid",
        &id,
        "dose",
        json!({"ml": 10}),
        now_secs(),
    )
    .await;
    let r = sim.recorder.wait_responses(&id, 2).await;
    assert_eq!(statuses(&r), [ResponseStatus::Ack, ResponseStatus::Done]);
    let after = sim.node_view("nd-ph-1").await["values"]["ph_sensor"]
        .as_f64()
        .unwrap();
    assert!(before - after > 0.1, "pH {before} -> {after}");

    // Sensors answer read_now with the reading.
    let id = new_cmd_id();
    sim.send(
        "nd-ec-4",
        "ec_sensor",
        &id,
        "read_now",
        json!({}),
        now_secs(),
    )
    .await;
    let r = sim.recorder.wait_responses(&id, 2).await;
    assert_eq!(r[1].status, ResponseStatus::Done);
    assert!(r[1].details.as_ref().unwrap()["value"].as_f64().is_some());
    sim.stop().await;
}

#[tokio::test]
async fn refused_commands_are_invalid_with_a_reason() {
    let mut sim = TestSim::start().await;
    sim.wait_all_connected().await;
    let now = now_secs();
    let mut expected = Vec::new();

    // Signed with another secret.
    let id = new_cmd_id();
    let forged = proto::signing::sign(
        b"not-the-secret",
        &id,
        "run_pump",
        json!({"duration_ms": 100}).as_object().cloned().unwrap(),
        now,
    );
    sim.publish_command("nd-ph-1", "pump_acid", serde_json::to_vec(&forged).unwrap())
        .await;
    expected.push((id, "bad_signature"));

    let cases = [
        (
            "pump_acid",
            "run_pump",
            json!({"duration_ms": 100}),
            now - 30,
            "stale_command",
        ),
        (
            "pump_acid",
            "run_pump",
            json!({"duration_ms": 100}),
            now + 30,
            "stale_command",
        ),
        ("pump_acid", "fly", json!({}), now, "unknown_command"),
        (
            "ph_sensor",
            "run_pump",
            json!({"duration_ms": 100}),
            now,
            "unknown_command",
        ),
        (
            "pump_nutrients",
            "run_pump",
            json!({"duration_ms": 100}),
            now,
            "unknown_channel",
        ),
        (
            "pump_acid",
            "run_pump",
            json!({"duration_ms": 0}),
            now,
            "bad_params",
        ),
        (
            "pump_acid",
            "dose",
            json!({"ml": "lots"}),
            now,
            "bad_params",
        ),
    ];
    for (channel, cmd, params, ts, code) in cases {
        let id = new_cmd_id();
        sim.send("nd-ph-1", channel, &id, cmd, params, ts).await;
        expected.push((id, code));
    }

    // Not a command at all, but with an id to answer to.
    let id = new_cmd_id();
    let bad = json!({"cmd_id": id, "cmd": "run_pump", "params": {}});
    sim.publish_command("nd-ph-1", "pump_acid", serde_json::to_vec(&bad).unwrap())
        .await;
    expected.push((id, "bad_format"));
    // Without an id nothing can be answered; the node just counts it.
    sim.publish_command("nd-ph-1", "pump_acid", b"garbage".to_vec())
        .await;

    for (id, code) in &expected {
        let r = sim.recorder.wait_responses(id, 1).await;
        assert_eq!(r[0].status, ResponseStatus::Invalid, "{code}");
        assert_eq!(r[0].error_code.as_deref(), Some(*code));
        assert!(r[0].error_message.is_some(), "{code}");
    }
    let params = sim.recorder.responses(&expected[6].0);
    assert!(
        params[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("duration_ms")
    );
    assert_eq!(sim.node("nd-ph-1").commands_executed(), 0);
    sim.stop().await;
}

#[tokio::test]
async fn a_redelivered_command_runs_once() {
    let mut sim = TestSim::start().await;
    sim.wait_all_connected().await;
    let id = new_cmd_id();
    let payload = sim
        .send(
            "nd-ph-2",
            "pump_base",
            &id,
            "run_pump",
            json!({"duration_ms": 100}),
            now_secs(),
        )
        .await;
    let first = sim.recorder.wait_responses(&id, 2).await;
    assert_eq!(
        statuses(&first),
        [ResponseStatus::Ack, ResponseStatus::Done]
    );

    // The same message again, as a QoS 1 redelivery would bring it.
    sim.publish_command("nd-ph-2", "pump_base", payload).await;
    let all = sim.recorder.wait_responses(&id, 3).await;
    assert_eq!(
        all[2].status,
        ResponseStatus::Done,
        "answered with the final status"
    );
    // A later command shows the redelivery was fully handled, and not executed.
    let next = new_cmd_id();
    sim.send("nd-ph-2", "pump_base", &next, "ping", json!({}), now_secs())
        .await;
    sim.recorder.wait_responses(&next, 2).await;
    let all = statuses(&sim.recorder.responses(&id));
    assert!(
        all.iter().filter(|s| **s == ResponseStatus::Ack).count() <= 2,
        "{all:?}"
    );
    assert!(
        all.iter().filter(|s| **s == ResponseStatus::Done).count() <= 2,
        "{all:?}"
    );
    assert_eq!(
        sim.node("nd-ph-2").commands_executed(),
        2,
        "run_pump once, ping once"
    );
    sim.stop().await;
}

#[tokio::test]
async fn faults_drop_responses_at_runtime() {
    let mut sim = TestSim::start().await;
    sim.wait_all_connected().await;
    let put = |body: Value| {
        let req = sim.http.put(sim.url("/sim/faults")).json(&body);
        async move { req.send().await.unwrap() }
    };
    let r = put(json!({"drop_responses": 1.0})).await;
    assert_eq!(r.status(), 200);
    let faults: Value = sim
        .http
        .get(sim.url("/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        faults,
        json!({"drop_responses": 1.0, "duplicate_responses": 0.0, "response_delay_ms": 0})
    );

    let dropped = new_cmd_id();
    sim.send(
        "nd-ph-1",
        "pump_acid",
        &dropped,
        "run_pump",
        json!({"duration_ms": 50}),
        now_secs(),
    )
    .await;
    eventually(WAIT, || async {
        (sim.node("nd-ph-1").commands_executed() == 1).then_some(())
    })
    .await
    .expect("the command still runs");

    // Duplicates, then back to normal: the next command is answered twice over.
    assert_eq!(
        put(json!({"drop_responses": 0.0, "duplicate_responses": 1.0}))
            .await
            .status(),
        200
    );
    let answered = new_cmd_id();
    sim.send(
        "nd-ph-1",
        "pump_acid",
        &answered,
        "ping",
        json!({}),
        now_secs(),
    )
    .await;
    let r = sim.recorder.wait_responses(&answered, 4).await;
    assert_eq!(
        statuses(&r),
        [
            ResponseStatus::Ack,
            ResponseStatus::Ack,
            ResponseStatus::Done,
            ResponseStatus::Done
        ]
    );
    assert!(
        sim.recorder.responses(&dropped).is_empty(),
        "dropped command got an answer"
    );

    // Bad values are refused by name and change nothing.
    let r = put(json!({"drop_responses": 2})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(
        body["message"].as_str().unwrap().contains("drop_responses"),
        "{body}"
    );
    let r = put(json!({"response_delay_ms": -5})).await;
    assert_eq!(r.status(), 400);
    let faults: Value = sim
        .http
        .get(sim.url("/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["duplicate_responses"], 1.0);
    sim.stop().await;
}

#[tokio::test]
async fn abort_leaves_the_last_will_and_stop_does_not() {
    let mut sim = TestSim::start().await;
    sim.wait_all_connected().await;
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

#[tokio::test]
async fn seeding_writes_the_layout_once() {
    let db = TestDb::new().await;
    let sim = sim_settings(3, 5);
    let l = layout(&sim);
    let first = seed(&db.pool, &l, &sim.greenhouse).await.unwrap();
    assert_eq!(
        (
            first.greenhouses_written,
            first.zones_written,
            first.nodes_written,
            first.channels_written
        ),
        (1, 3, 5, 15)
    );
    let count = |table: &'static str| {
        let pool = db.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            n
        }
    };
    let counts = (
        count("greenhouses").await,
        count("zones").await,
        count("nodes").await,
        count("node_channels").await,
    );
    assert_eq!(counts, (1, 3, 5, 15));
    let snapshot = || {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<
                _,
                (
                    String,
                    Option<String>,
                    String,
                    Option<String>,
                    Option<String>,
                ),
            >(
                "SELECT n.uid, z.uid, n.type, n.fw_version, n.secret
                 FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id ORDER BY n.uid",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let rows = snapshot().await;
    let ec4 = rows.iter().find(|r| r.0 == "nd-ec-4").expect("nd-ec-4");
    assert_eq!(
        (ec4.1.as_deref(), ec4.2.as_str(), ec4.3.as_deref()),
        (Some("zn-1"), "ec", Some("sim-1.0"))
    );
    // Every node has a secret of its own (never the default), and a broker
    // password.
    let secrets: std::collections::HashSet<_> = rows.iter().map(|r| r.4.clone()).collect();
    assert_eq!(secrets.len(), 5, "one secret per node");
    assert!(
        rows.iter()
            .all(|r| r.4.as_ref().is_some_and(|s| s.len() == 64))
    );
    let (passwords,): (i64,) = sqlx::query_as(
        "SELECT count(DISTINCT mqtt_password) FROM nodes WHERE length(mqtt_password) >= 32",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(passwords, 5);

    // Classic nodes follow config/update, and say so.
    let (others,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM nodes WHERE move_via <> 'config_update'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(others, 0);

    let second = seed(&db.pool, &l, &sim.greenhouse).await.unwrap();
    assert_eq!(second.greenhouse_id, first.greenhouse_id);
    assert_eq!(
        (
            second.greenhouses_written,
            second.zones_written,
            second.nodes_written,
            second.channels_written
        ),
        (0, 0, 0, 0)
    );
    let again = (
        count("greenhouses").await,
        count("zones").await,
        count("nodes").await,
        count("node_channels").await,
    );
    assert_eq!(again, counts);
    assert_eq!(snapshot().await, rows, "secrets are kept");

    // A row without credentials (seeded by an older simulator) gets them;
    // the others keep theirs.
    sqlx::query("UPDATE nodes SET secret = NULL, mqtt_password = NULL WHERE uid = 'nd-ph-1'")
        .execute(&db.pool)
        .await
        .unwrap();
    seed(&db.pool, &l, &sim.greenhouse).await.unwrap();
    let third = snapshot().await;
    for (before, after) in rows.iter().zip(&third) {
        if before.0 == "nd-ph-1" {
            assert!(after.4.is_some() && after.4 != before.4);
        } else {
            assert_eq!(before, after);
        }
    }
    let creds = node_sim::seed::credentials(&db.pool, &["nd-ph-1", "nd-ec-4"])
        .await
        .unwrap();
    assert_eq!(creds.len(), 2);
    assert!(creds["nd-ph-1"].mqtt_password.is_some());

    let (ty, metric, unit): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT c.type, c.metric_type, c.unit FROM node_channels c JOIN nodes n ON n.id = c.node_id
         WHERE n.uid = 'nd-ph-1' AND c.channel = 'ph_sensor'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (ty.as_str(), metric.as_deref(), unit.as_deref()),
        ("sensor", Some("PH"), Some("pH"))
    );
}

#[tokio::test]
async fn the_app_seeds_before_it_starts() {
    let db = TestDb::new().await;
    let mut sim_cfg = sim_settings(2, 3);
    sim_cfg.seed_db = true;
    let gh = sim_cfg.greenhouse.clone();
    let mut sim = TestSim::start_with(sim_cfg, settings(&[("DATABASE_URL", &db.url)])).await;
    let (name,): (String,) = sqlx::query_as("SELECT name FROM greenhouses WHERE uid = $1")
        .bind(&gh)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(name, "Simulated greenhouse");
    let (nodes,): (i64,) = sqlx::query_as("SELECT count(*) FROM nodes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(nodes, 3);
    // Seeded nodes log in with their own accounts, which device-registry
    // would create.
    sim.broker.sync_node_accounts(&db.pool).await;
    sim.wait_all_connected().await;
    let body: Value = sim
        .http
        .get(sim.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["dependencies"]["postgres"]["state"], "up");
    sim.stop().await;
}
