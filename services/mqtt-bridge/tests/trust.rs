//! Issue 11 ("Trust") from the outside: a response counts only from where
//! its command went; a bad string is a 400 naming its field and never fails
//! another request of the same group commit; a send runs to its end even
//! when the client hangs up.

mod helpers;

use std::time::Duration;

use helpers::{TOKEN, TestApp, spawn_app};
use proto::payloads::ResponseStatus;
use serde_json::json;

/// `bridge_responses_dropped_total{reason}` from the bridge's /metrics (0
/// when absent; the recorder is the process's, so compare before/after).
async fn dropped(app: &TestApp, reason: &str) -> u64 {
    let series = format!("bridge_responses_dropped_total{{reason=\"{reason}\"}}");
    testkit::scrape_metric(&app.base, &series).await as u64
}

#[tokio::test]
async fn a_response_from_another_node_or_channel_is_dropped_and_the_real_done_counts() {
    let mut app = spawn_app().await;
    let (status, body) = app.run_acid_pump(100).await;
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
        app.respond_on(t, &cmd_id, ResponseStatus::Error, Some("forged"))
            .await;
    }
    app.respond_on(
        "hydro/gh-t/zn-a/nd-ph-1/pump_acid/command_response",
        "no-such-command",
        ResponseStatus::Done,
        Some("forged"),
    )
    .await;
    for ((reason, _), before) in forged.iter().zip(before) {
        testkit::eventually(Duration::from_secs(10), || async {
            (dropped(&app, reason).await > before).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("a {reason} response is counted"));
    }
    testkit::eventually(Duration::from_secs(10), || async {
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

#[tokio::test]
async fn nul_and_over_long_strings_are_400s_naming_the_field_and_fail_no_other_request() {
    let app = spawn_app().await;
    // (path, body, the field the 400 must name)
    let bad: Vec<(&str, String, &str)> = vec![
        (
            "/bridge/zones/zn%00a/commands",
            r#"{"cmd":"stop","channel":"pump_acid","node_uid":"nd-ph-1"}"#.into(),
            "zone_id",
        ),
        (
            "/bridge/nodes/nd-ph%001/commands",
            r#"{"cmd":"stop","channel":"pump_acid"}"#.into(),
            "node_uid",
        ),
        (
            "/bridge/zones/zn-a/commands",
            r#"{"cmd":"stop","channel":"pump\u0000acid","node_uid":"nd-ph-1"}"#.into(),
            "channel",
        ),
        (
            "/bridge/zones/zn-a/commands",
            r#"{"cmd":"st\u0000op","channel":"pump_acid","node_uid":"nd-ph-1"}"#.into(),
            "cmd",
        ),
        (
            "/bridge/zones/zn-a/commands",
            r#"{"cmd":"stop","channel":"pump_acid","node_uid":"nd-ph-1\u0000"}"#.into(),
            "node_uid",
        ),
        (
            "/bridge/zones/zn-a/commands",
            r#"{"cmd":"stop","channel":"pump_acid","node_uid":"nd-ph-1","cmd_id":"a\u0000b"}"#.into(),
            "cmd_id",
        ),
        (
            "/bridge/zones/zn-a/commands",
            r#"{"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1","params":{"a":[1,{"b":"x\u0000"}]}}"#.into(),
            "params.a[1].b",
        ),
        (
            "/bridge/zones/zn-a/commands",
            r#"{"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1","params":{"k\u0000":1}}"#.into(),
            "params",
        ),
        (
            "/bridge/zones/zn-a/commands",
            format!(
                r#"{{"cmd":"stop","channel":"{}","node_uid":"nd-ph-1"}}"#,
                "c".repeat(65)
            ),
            "channel",
        ),
        (
            "/bridge/zones/zn-a/commands",
            format!(
                r#"{{"cmd":"{}","channel":"pump_acid","node_uid":"nd-ph-1"}}"#,
                "x".repeat(65)
            ),
            "cmd",
        ),
    ];
    let valid = (0..40).map(|i| {
        let (path, channel) = if i % 2 == 0 {
            ("/bridge/zones/zn-a/commands", "pump_acid")
        } else {
            ("/bridge/nodes/nd-ec-1/commands", "pump_nutrients")
        };
        let body = if i % 2 == 0 {
            json!({"cmd":"stop","channel":channel,"node_uid":"nd-ph-1","cmd_id":format!("ok-{i:02}")})
        } else {
            json!({"cmd":"stop","channel":channel,"cmd_id":format!("ok-{i:02}")})
        };
        (path.to_owned(), body.to_string())
    });
    // Interleaved, all at once: they share the group commit.
    let mut requests: Vec<(String, String, Option<&str>)> = Vec::new();
    let mut bad_iter = bad.iter();
    for (i, (path, body)) in valid.enumerate() {
        requests.push((path, body, None));
        if i % 4 == 0
            && let Some((p, b, field)) = bad_iter.next()
        {
            requests.push(((*p).to_owned(), b.clone(), Some(field)));
        }
    }
    for (p, b, field) in bad_iter {
        requests.push(((*p).to_owned(), b.clone(), Some(field)));
    }
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|(path, body, _)| app.post_raw(path, body.clone(), Some(TOKEN))),
    )
    .await;
    for ((path, body, field), (status, answer)) in requests.iter().zip(&answers) {
        match field {
            Some(field) => {
                assert_eq!(*status, 400, "{path} {body}: {answer}");
                assert_eq!(answer["status"], "error", "{answer}");
                assert_eq!(answer["code"], "invalid_field", "{answer}");
                let message = answer["message"].as_str().unwrap();
                assert!(message.contains(&format!("`{field}")), "{field}: {message}");
            }
            None => assert_eq!(*status, 200, "{path} {body}: {answer}"),
        }
    }
    let stored: Vec<String> = sqlx::query_scalar("SELECT cmd_id FROM commands ORDER BY cmd_id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let expected: Vec<String> = (0..40).map(|i| format!("ok-{i:02}")).collect();
    assert_eq!(stored, expected, "every valid request stored exactly once");

    // Reads too: a NUL in the path is a 400, not a database error.
    let (status, answer) = app.get("/bridge/commands/ok%0000").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("`cmd_id`"));
}

#[tokio::test]
async fn a_send_runs_to_its_end_when_the_client_hangs_up() {
    let app = spawn_app().await;
    let impatient = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // A stalled broker holds every publish (no PUBACK) while the clients,
    // many at once, give up after 0.2 to 1 s: their rows are written and
    // their sends wait for the broker when they hang up.
    app.broker.freeze(true);
    let requests = (0..160).map(|i| {
        let (path, body) = if i % 2 == 0 {
            (
                "/bridge/zones/zn-a/commands",
                json!({"cmd":"stop","channel":"pump_acid","node_uid":"nd-ph-1","cmd_id":format!("hang-{i:03}")}),
            )
        } else {
            (
                "/bridge/nodes/nd-ec-1/commands",
                json!({"cmd":"stop","channel":"pump_nutrients","cmd_id":format!("hang-{i:03}")}),
            )
        };
        let request = impatient
            .post(format!("{}{path}", app.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .timeout(Duration::from_millis(200 + (i * 37) % 800));
        async move { request.send().await.is_ok() }
    });
    let thaw = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        app.broker.freeze(false);
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(requests), thaw);
    let answered = answers.into_iter().filter(|ok| *ok).count();
    assert_eq!(answered, 0, "every client hung up before its answer");

    // Every row written reaches SENT (with sent_at) or SEND_FAILED; none is
    // left QUEUED.
    let rows = testkit::eventually(Duration::from_secs(15), || async {
        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT cmd_id, status, sent_at IS NOT NULL FROM commands ORDER BY cmd_id",
        )
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        rows.iter()
            .all(|(_, status, _)| status != "QUEUED")
            .then_some(rows)
    })
    .await;
    let Some(rows) = rows else {
        let queued: Vec<String> = sqlx::query_scalar(
            "SELECT cmd_id FROM commands WHERE status = 'QUEUED' ORDER BY cmd_id",
        )
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        panic!("{} rows left QUEUED: {queued:?}", queued.len());
    };
    // A client that hung up before its row was written left nothing; every
    // row here is one whose client hung up after.
    assert!(!rows.is_empty(), "rows were written before the hang-ups");
    for (cmd_id, status, sent) in &rows {
        assert!(
            status == "SEND_FAILED" || *sent,
            "{cmd_id}: {status} without sent_at"
        );
    }
}
