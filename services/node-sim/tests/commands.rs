//! Commands to simulated nodes on a real (private) Mosquitto, checked the
//! way the backend sees them: signed commands acknowledged then done,
//! refusals with a reason, redeliveries run once, response faults.

mod support;

use proto::payloads::{CommandResponse, ResponseStatus};
use serde_json::{Value, json};
use support::{TestSim, WAIT, new_cmd_id, now_secs};
use testkit::eventually;

fn statuses(r: &[CommandResponse]) -> Vec<ResponseStatus> {
    r.iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn signed_command_is_acked_then_done() {
    let mut sim = TestSim::connected().await;
    let id = sim
        .send_now(
            "nd-ph-1",
            "pump_acid",
            "run_pump",
            json!({"duration_ms": 100}),
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
    let id = sim
        .send_now("nd-ph-1", "pump_acid", "dose", json!({"ml": 10}))
        .await;
    let r = sim.recorder.wait_responses(&id, 2).await;
    assert_eq!(statuses(&r), [ResponseStatus::Ack, ResponseStatus::Done]);
    let after = sim.node_view("nd-ph-1").await["values"]["ph_sensor"]
        .as_f64()
        .unwrap();
    assert!(before - after > 0.1, "pH {before} -> {after}");

    // Sensors answer read_now with the reading.
    let id = sim
        .send_now("nd-ec-4", "ec_sensor", "read_now", json!({}))
        .await;
    let r = sim.recorder.wait_responses(&id, 2).await;
    assert_eq!(r[1].status, ResponseStatus::Done);
    assert!(r[1].details.as_ref().unwrap()["value"].as_f64().is_some());
    sim.stop().await;
}

#[tokio::test]
async fn refused_commands_are_invalid_with_a_reason() {
    let mut sim = TestSim::connected().await;
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
    let mut sim = TestSim::connected().await;
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
    let next = sim
        .send_now("nd-ph-2", "pump_base", "ping", json!({}))
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
    let mut sim = TestSim::connected().await;
    let put = |body: Value| {
        let req = sim.http.put(sim.url("/sim/faults")).json(&body);
        async move { req.send().await.unwrap() }
    };
    let r = put(json!({"drop_responses": 1.0})).await;
    assert_eq!(r.status(), 200);
    let faults: Value = sim.get_json("/sim/faults").await;
    assert_eq!(
        faults,
        json!({"drop_responses": 1.0, "duplicate_responses": 0.0, "response_delay_ms": 0})
    );

    let dropped = sim
        .send_now(
            "nd-ph-1",
            "pump_acid",
            "run_pump",
            json!({"duration_ms": 50}),
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
    let answered = sim
        .send_now("nd-ph-1", "pump_acid", "ping", json!({}))
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
    let faults: Value = sim.get_json("/sim/faults").await;
    assert_eq!(faults["duplicate_responses"], 1.0);
    sim.stop().await;
}
