//! Issue 11 ("Trust") from the outside: a response counts only from where
//! its command went; a bad string is a 400 naming its field and never fails
//! another request of the same group commit; a send runs to its end even
//! when the client hangs up.

mod helpers;

use std::time::Duration;

use common::payloads::{CommandResponse, ResponseStatus};
use helpers::{TOKEN, TestApp, spawn_app};
use serde_json::{Value, json};

/// `bridge_responses_dropped_total{reason}` from the bridge's /metrics (0
/// when absent; the recorder is the process's, so compare before/after).
async fn dropped(app: &TestApp, reason: &str) -> u64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("bridge_responses_dropped_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

async fn publish_response(app: &TestApp, topic: &str, cmd_id: &str, status: ResponseStatus) {
    let response = CommandResponse {
        cmd_id: cmd_id.to_owned(),
        status,
        ts: chrono::Utc::now().timestamp_millis(),
        details: None,
        error_code: Some("forged".into()),
        error_message: None,
        message: None,
    };
    app.nodes
        .publish(topic, serde_json::to_vec(&response).unwrap(), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_response_from_another_node_or_channel_is_dropped_and_the_real_done_counts() {
    let mut app = spawn_app().await;
    let (status, body) = app
        .post(
            "/bridge/zones/zn-a/commands",
            json!({"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1","params":{"duration_ms":100}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cmd_id = body["data"]["command_id"].as_str().unwrap().to_owned();
    let (topic, _) = app.next_command().await;
    assert_eq!(topic, "hydro/gh-t/zn-a/nd-ph-1/pump_acid/command");

    let forged = [
        (
            "wrong_node",
            "hydro/gh-t/zn-a/nd-ph-2/pump_acid/command_response",
        ),
        (
            "wrong_channel",
            "hydro/gh-t/zn-a/nd-ph-1/ph_sensor/command_response",
        ),
        (
            "wrong_zone",
            "hydro/gh-t/zn-b/nd-ph-1/pump_acid/command_response",
        ),
    ];
    let mut before = Vec::new();
    for (reason, _) in &forged {
        before.push(dropped(&app, reason).await);
    }
    let unknown_before = dropped(&app, "unknown_command").await;
    for (_, t) in &forged {
        publish_response(&app, t, &cmd_id, ResponseStatus::Error).await;
    }
    publish_response(
        &app,
        "hydro/gh-t/zn-a/nd-ph-1/pump_acid/command_response",
        "no-such-command",
        ResponseStatus::Done,
    )
    .await;
    for ((reason, _), before) in forged.iter().zip(before) {
        common::testing::eventually(Duration::from_secs(10), || async {
            (dropped(&app, reason).await > before).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("a {reason} response is counted"));
    }
    common::testing::eventually(Duration::from_secs(10), || async {
        (dropped(&app, "unknown_command").await > unknown_before).then_some(())
    })
    .await
    .expect("a response to an unknown command is counted");
    // None of them touched the command.
    assert_eq!(app.status_of(&cmd_id).await, "SENT");

    app.respond(&topic, &cmd_id, ResponseStatus::Done, None)
        .await;
    assert_eq!(app.wait_status(&cmd_id, "DONE").await, "DONE");
    let error_code: Option<String> =
        sqlx::query_scalar("SELECT error_code FROM commands WHERE cmd_id = $1")
            .bind(&cmd_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(error_code, None, "the forged ERROR left nothing behind");
}
