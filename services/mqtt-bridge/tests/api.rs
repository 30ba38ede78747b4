//! The command API from the outside: what a client sends, what reaches the
//! node, what the database says.
//! Long (over 400 lines) because it is one subject, the command API, one
//! short test per case a client can meet.

mod helpers;

use std::time::Duration;

use helpers::{SECRET, TestApp, history, spawn_app, spawn_app_with};
use proto::payloads::ResponseStatus;
use proto::signing;
use serde_json::{Value, json};

/// A refused command: its path and body, the status, the code (when one
/// is checked) and what the message must name (when it is checked).
type Refusal = (
    &'static str,
    Value,
    u16,
    Option<&'static str>,
    Option<&'static str>,
);

/// POSTs each refusal's body to its path: refused as it says.
async fn assert_refused(app: &TestApp, refusals: Vec<Refusal>) {
    for (path, body, status, code, named) in refusals {
        let (got, answer) = app.post(path, body).await;
        assert_eq!(got, status, "{path}: {answer}");
        if let Some(code) = code {
            assert_eq!(answer["code"], code, "{path}: {answer}");
        }
        if let Some(named) = named {
            let message = answer["message"].as_str().unwrap();
            assert!(message.contains(named), "{answer}");
        }
    }
}

#[tokio::test]
async fn command_reaches_the_node_signed_and_the_row_is_sent() {
    let mut app = spawn_app().await;
    let (status, body) = app.run_acid_pump(2000).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["data"]["status"], "SENT");
    assert_eq!(body["data"]["node_uid"], "nd-ph-1");
    assert_eq!(body["data"]["broker_id"], "mqtt1");
    let cmd_id = body["data"]["command_id"].as_str().unwrap().to_owned();

    let (topic, command) = app.next_command().await;
    assert_eq!(topic, "hydro/gh-t/zn-a/nd-ph-1/pump_acid/command");
    assert_eq!(command.cmd_id, cmd_id);
    assert_eq!(command.cmd, "run_pump");
    assert_eq!(command.params["duration_ms"], 2000);
    assert!(
        signing::verify(SECRET.as_bytes(), &command),
        "signed with NODE_DEFAULT_SECRET"
    );
    assert!((chrono::Utc::now().timestamp() - command.ts).abs() < 10);

    let (st, source, sent): (String, String, bool) = sqlx::query_as(
        "SELECT status, source, sent_at IS NOT NULL FROM commands WHERE cmd_id = $1",
    )
    .bind(&cmd_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!((st.as_str(), source.as_str(), sent), ("SENT", "api", true));
}

#[tokio::test]
async fn a_node_with_its_own_secret_gets_commands_signed_with_it() {
    let mut app = spawn_app().await;
    sqlx::query("UPDATE nodes SET secret = 'own-key' WHERE uid = 'nd-ec-1'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, _) = app
        .post(
            "/bridge/nodes/nd-ec-1/commands",
            json!({"cmd":"dose","channel":"pump_nutrients","params":{"ml":5}}),
        )
        .await;
    assert_eq!(status, 200);
    let (topic, command) = app.next_command().await;
    assert_eq!(topic, "hydro/gh-t/zn-b/nd-ec-1/pump_nutrients/command");
    assert!(signing::verify(b"own-key", &command));
    assert!(!signing::verify(SECRET.as_bytes(), &command));
}

#[tokio::test]
async fn responses_move_the_status_forward_only() {
    let mut app = spawn_app().await;
    let (cmd_id, topic) = app
        .send(
            "/bridge/zones/zn-a/commands",
            json!({"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1"}),
        )
        .await;

    for (status, want) in [(ResponseStatus::Ack, "ACK"), (ResponseStatus::Done, "DONE")] {
        app.respond(&topic, &cmd_id, status, None).await;
        assert_eq!(app.wait_status(&cmd_id, want).await, want);
    }
    // Late, duplicated and contradicting responses change nothing.
    for (status, code) in [
        (ResponseStatus::Ack, None),
        (ResponseStatus::Done, None),
        (ResponseStatus::Error, Some("late")),
    ] {
        app.respond(&topic, &cmd_id, status, code).await;
    }
    // A marker command's response, sent after them, shows they were all processed.
    let (marker_id, marker_topic) = app
        .send(
            "/bridge/zones/zn-b/commands",
            json!({"cmd":"stop","channel":"pump_nutrients"}),
        )
        .await;
    app.respond(&marker_topic, &marker_id, ResponseStatus::Done, None)
        .await;
    assert_eq!(app.wait_status(&marker_id, "DONE").await, "DONE");
    assert_eq!(app.status_of(&cmd_id).await, "DONE");

    let (status, body) = app.get(&format!("/bridge/commands/{cmd_id}")).await;
    assert_eq!(status, 200);
    let data = &body["data"];
    assert_eq!(data["status"], "DONE");
    assert_eq!(data["error_code"], serde_json::Value::Null);
    assert_eq!(history(data), ["QUEUED", "SENT", "ACK", "DONE"]);
}

#[tokio::test]
async fn invalid_response_is_recorded_with_its_error_code() {
    let mut app = spawn_app().await;
    let calibrate = json!({"cmd":"calibrate","channel":"ph_sensor"});
    let (cmd_id, topic) = app.send("/bridge/nodes/nd-ph-1/commands", calibrate).await;
    app.respond(&topic, &cmd_id, ResponseStatus::Invalid, Some("bad_params"))
        .await;
    assert_eq!(app.wait_status(&cmd_id, "INVALID").await, "INVALID");
    let (_, body) = app.get(&format!("/bridge/commands/{cmd_id}")).await;
    assert_eq!(body["data"]["error_code"], "bad_params");
}

#[tokio::test]
async fn unknown_zone_node_or_channel_is_404_with_a_reason() {
    let app = spawn_app().await;
    let cases = [
        (
            "/bridge/zones/zn-x/commands",
            json!({"cmd":"c","channel":"pump_acid"}),
            "zone_not_found",
        ),
        (
            "/bridge/zones/zn-a/commands",
            json!({"cmd":"c","channel":"pump_acid","node_uid":"nd-x"}),
            "node_not_found",
        ),
        (
            "/bridge/zones/zn-a/commands",
            json!({"cmd":"c","channel":"pump_acid","node_uid":"nd-ec-1"}),
            "node_not_found",
        ),
        (
            "/bridge/zones/zn-a/commands",
            json!({"cmd":"c","channel":"nope","node_uid":"nd-ph-1"}),
            "channel_not_found",
        ),
        (
            "/bridge/zones/zn-b/commands",
            json!({"cmd":"c","channel":"pump_acid"}),
            "channel_not_found",
        ),
        (
            "/bridge/nodes/nd-x/commands",
            json!({"cmd":"c","channel":"pump_acid"}),
            "node_not_found",
        ),
        (
            "/bridge/nodes/nd-ph-1/commands",
            json!({"cmd":"c","channel":"nope"}),
            "channel_not_found",
        ),
    ];
    for (path, body, code) in cases {
        let (status, answer) = app.post(path, body.clone()).await;
        assert_eq!(status, 404, "{path} {body}: {answer}");
        assert_eq!(answer["status"], "error");
        assert_eq!(answer["code"], code, "{path} {body}");
        assert!(answer["message"].as_str().unwrap().len() > 10);
    }
    let (status, answer) = app.get("/bridge/commands/never-sent").await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("command_not_found"))
    );
    assert_eq!(
        app.commands_stored().await,
        0,
        "refused requests write nothing"
    );
}

#[tokio::test]
async fn zone_by_numeric_id_and_the_ambiguous_and_unassigned_cases() {
    let app = spawn_app().await;
    let zone_id: i64 = sqlx::query_scalar("SELECT id FROM zones WHERE uid = 'zn-b'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let (status, _) = app
        .post(
            &format!("/bridge/zones/{zone_id}/commands"),
            json!({"cmd":"stop","channel":"pump_nutrients"}),
        )
        .await;
    assert_eq!(status, 200);
    let stop_acid = json!({"cmd":"stop","channel":"pump_acid"});
    let refusals: Vec<Refusal> = vec![
        (
            "/bridge/zones/zn-a/commands",
            stop_acid.clone(),
            422,
            Some("ambiguous_channel"),
            Some("nd-ph-1"),
        ),
        (
            "/bridge/nodes/nd-loose/commands",
            stop_acid,
            422,
            Some("node_unassigned"),
            None,
        ),
    ];
    assert_refused(&app, refusals).await;
}

#[tokio::test]
async fn token_is_required() {
    let app = spawn_app().await;
    let body = json!({"cmd":"stop","channel":"pump_nutrients"});
    let (status, answer) = app
        .post_with_token("/bridge/zones/zn-b/commands", body.clone(), None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app
        .post_with_token("/bridge/zones/zn-b/commands", body, Some("wrong"))
        .await;
    assert_eq!(status, 401);
    let (status, _) = app.get_with_token("/bridge/commands/x", None).await;
    assert_eq!(status, 401);
    // Health and metrics stay open for probes.
    let (status, _) = app.get_with_token("/health", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_bodies_get_a_json_error_that_names_the_problem() {
    let app = spawn_app().await;
    let refusals: Vec<Refusal> = vec![
        (
            "/bridge/zones/zn-b/commands",
            json!({"type":"stop","channel":"pump_nutrients"}),
            400,
            Some("legacy_field_type"),
            Some("`type`"),
        ),
        (
            "/bridge/zones/zn-b/commands",
            json!({"channel":"pump_nutrients"}),
            400,
            None,
            Some("cmd"),
        ),
    ];
    assert_refused(&app, refusals).await;
    let raw = app
        .http
        .post(format!("{}/bridge/zones/zn-b/commands", app.base))
        .bearer_auth(helpers::TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let answer: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(answer["code"], "invalid_json");
}

#[tokio::test]
async fn same_cmd_id_twice_is_one_command() {
    let mut app = spawn_app().await;
    let body = json!({"cmd":"run_pump","channel":"pump_nutrients","params":{"duration_ms":1000},"cmd_id":"client-key-1"});
    let (s1, a1) = app.post("/bridge/zones/zn-b/commands", body.clone()).await;
    let (s2, a2) = app.post("/bridge/zones/zn-b/commands", body.clone()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a1, a2, "the retry gets the first answer");
    assert_eq!(a1["data"]["command_id"], "client-key-1");
    assert_eq!(app.commands_stored().await, 1);
    let _ = app.next_command().await;
    assert!(
        app.no_command_within(Duration::from_millis(500)).await,
        "published once"
    );

    let mut other = body.clone();
    other["params"]["duration_ms"] = json!(5);
    let (status, answer) = app.post("/bridge/zones/zn-b/commands", other).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("cmd_id_conflict"))
    );
}

#[tokio::test]
async fn concurrent_retries_of_one_cmd_id_publish_once() {
    let mut app = spawn_app().await;
    let body = json!({"cmd":"stop","channel":"pump_nutrients","cmd_id":"racy"});
    let answers = futures::future::join_all(
        (0..8).map(|_| app.post("/bridge/zones/zn-b/commands", body.clone())),
    )
    .await;
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["data"]["command_id"], "racy");
    }
    let _ = app.next_command().await;
    assert!(
        app.no_command_within(Duration::from_millis(500)).await,
        "published once"
    );
}

#[tokio::test]
async fn broker_down_gives_503_and_send_failed() {
    let mut app = spawn_app_with(&[("MQTT_PUBLISH_TIMEOUT_MS", "500")]).await;
    app.broker.kill();
    let (status, answer) = app.stop_nutrients("down-1").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "broker_unavailable");
    let (st, code, finished): (String, Option<String>, bool) = sqlx::query_as(
        "SELECT status, error_code, finished_at IS NOT NULL FROM commands WHERE cmd_id = 'down-1'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (st.as_str(), code.as_deref(), finished),
        ("SEND_FAILED", Some("send_failed"), true)
    );
    let (status, body) = app.get_with_token("/health", None).await;
    assert_eq!(status, 503, "health says the broker is down");
    assert_eq!(body["dependencies"]["mqtt"]["state"], "down");
    assert_eq!(body["dependencies"]["postgres"]["state"], "up");
}

#[tokio::test]
async fn unanswered_command_times_out() {
    let app = spawn_app_with(&[("COMMAND_TIMEOUT_SEC", "1")]).await;
    let (status, _) = app.stop_nutrients("t-1").await;
    assert_eq!(status, 200);
    assert_eq!(app.wait_status("t-1", "TIMEOUT").await, "TIMEOUT");
    let (_, body) = app.get("/bridge/commands/t-1").await;
    assert_eq!(body["data"]["error_code"], "timeout");
    assert_eq!(history(&body["data"]), ["QUEUED", "SENT", "TIMEOUT"]);
}
