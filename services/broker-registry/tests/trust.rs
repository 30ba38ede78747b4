//! The API's trust rules (issue 11): writes need the bearer token, reads as
//! configured; every error is JSON; strings PostgreSQL would refuse are a 400
//! naming the field, and never fail the valid requests around them.

mod helpers;

use helpers::spawn_registry;
use reqwest::Method;
use serde_json::Value;

const TOKEN: &str = "registry-test-token";

async fn brokers(r: &helpers::TestRegistry) -> Vec<(String, bool, bool, String)> {
    sqlx::query_as("SELECT id, enabled, draining, role FROM brokers ORDER BY id")
        .fetch_all(r.pool())
        .await
        .unwrap()
}

fn assert_error(status: u16, answer: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{answer}");
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_change_nothing_without_it() {
    let r = spawn_registry(&["primary"], &[("BROKER_REGISTRY_API_TOKEN", TOKEN)]).await;
    let before = brokers(&r).await;
    let add = r#"{"id":"mqtt9","url":"mqtt://127.0.0.1:1"}"#;
    for token in [None, Some("wrong-token"), Some("")] {
        for (method, path, body) in [
            (Method::POST, "/api/brokers", add),
            (Method::PATCH, "/api/brokers/mqtt1", r#"{"enabled":false}"#),
            (Method::POST, "/api/rebalance", ""),
        ] {
            let (status, answer) = r.call(method.clone(), path, Some(body), token).await;
            assert_error(status, &answer, 401, "unauthorized");
        }
    }
    assert_eq!(
        brokers(&r).await,
        before,
        "a refused write changed the list"
    );
    let (status, n) = r.get("/api/brokers").await;
    assert_eq!(status, 200, "reads stay open by default: {n}");
    assert_eq!(r.get("/").await.0, 200, "the dashboard is open too");

    let (status, _) = r
        .call(Method::POST, "/api/brokers", Some(add), Some(TOKEN))
        .await;
    assert_eq!(status, 201);
    let (status, _) = r
        .call(
            Method::PATCH,
            "/api/brokers/mqtt9",
            Some(r#"{"enabled":false}"#),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let after = brokers(&r).await;
    assert!(
        after.contains(&("mqtt9".into(), false, false, "primary".into())),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_can_be_guarded_too() {
    let r = spawn_registry(
        &["primary"],
        &[
            ("BROKER_REGISTRY_API_TOKEN", TOKEN),
            ("HTTP_READS_REQUIRE_TOKEN", "true"),
        ],
    )
    .await;
    for path in ["/api/brokers", "/api/assignments", "/api/advisor"] {
        let (status, answer) = r.call(Method::GET, path, None, None).await;
        assert_error(status, &answer, 401, "unauthorized");
        let (status, _) = r.call(Method::GET, path, None, Some(TOKEN)).await;
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(r.get("/health").await.0, 200, "probes stay open");
}

/// A request (method, path, body) and its answer (status, code, a text the
/// message must contain).
type Case = (
    Method,
    String,
    Option<String>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_and_names_what_was_wrong() {
    let r = spawn_registry(&["primary"], &[("BROKER_REGISTRY_API_TOKEN", TOKEN)]).await;
    let long_path = format!("/api/brokers/{}", "x".repeat(9000));
    let long_url = format!(
        r#"{{"id":"mqtt7","url":"mqtt://{}:1883"}}"#,
        "h".repeat(600)
    );
    let big = format!(
        r#"{{"id":"mqtt7","url":"mqtt://h:1","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/api/nowhere".into(),
            None,
            404,
            "route_not_found",
            "",
        ),
        (
            Method::DELETE,
            "/api/brokers".into(),
            None,
            405,
            "method_not_allowed",
            "",
        ),
        (Method::GET, long_path, None, 414, "uri_too_long", ""),
        (
            Method::POST,
            "/api/brokers".into(),
            Some(big),
            413,
            "body_too_large",
            "",
        ),
        (
            Method::GET,
            "/api/brokers/%FF".into(),
            None,
            400,
            "invalid_path",
            "",
        ),
        (
            Method::GET,
            "/api/rebalance/plan?max_moves=abc".into(),
            None,
            400,
            "invalid_query",
            "max_moves",
        ),
        (
            Method::GET,
            "/api/failovers?limit=abc".into(),
            None,
            400,
            "invalid_query",
            "limit",
        ),
        (
            Method::GET,
            "/api/status-changes?limit=0".into(),
            None,
            400,
            "invalid_query",
            "`limit`",
        ),
        (
            Method::GET,
            "/api/brokers/mq%00tt1".into(),
            None,
            400,
            "invalid_text",
            "`id`",
        ),
        (
            Method::GET,
            "/api/assignments?broker=a%00".into(),
            None,
            400,
            "invalid_text",
            "`broker`",
        ),
        (
            Method::PATCH,
            "/api/brokers/mqtt1%00".into(),
            Some(r#"{"enabled":false}"#.into()),
            400,
            "invalid_text",
            "`id`",
        ),
        (
            Method::POST,
            "/api/brokers".into(),
            Some(r#"{"id":"mq\u0000tt8","url":"mqtt://127.0.0.1:2"}"#.into()),
            400,
            "invalid_text",
            "`id`",
        ),
        (
            Method::POST,
            "/api/brokers".into(),
            Some(r#"{"id":"mqtt8","url":"mqtt://127.0.0.1:2\u0000"}"#.into()),
            400,
            "invalid_text",
            "`url`",
        ),
        (
            Method::POST,
            "/api/brokers".into(),
            Some(long_url),
            400,
            "invalid_text",
            "`url`",
        ),
        (
            Method::POST,
            "/api/rebalance".into(),
            Some(r#"{"strategy":"dyn\u0000amic"}"#.into()),
            400,
            "invalid_text",
            "`strategy`",
        ),
        (
            Method::POST,
            "/api/brokers".into(),
            Some("{".into()),
            400,
            "invalid_json",
            "",
        ),
    ];
    for (method, path, body, status, code, names) in cases {
        let (got, answer) = r
            .call(method.clone(), &path, body.as_deref(), Some(TOKEN))
            .await;
        let shown = &path[..path.len().min(50)];
        let what = format!("{method} {shown}");
        testkit::http::assert_error(&what, (got, &answer), status, code);
        assert!(
            answer["message"].as_str().unwrap_or("").contains(names),
            "{method} {shown}: {answer}"
        );
    }
    let raw = r
        .http
        .post(format!("{}/api/brokers", r.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body(r#"{"id":"mqtt7","url":"mqtt://h:1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 415);
    let answer: Value = raw.json().await.unwrap();
    assert_eq!(answer["code"], "unsupported_media_type");
    let ids: Vec<String> = brokers(&r).await.into_iter().map(|b| b.0).collect();
    assert_eq!(ids, ["mqtt1"], "nothing refused was stored");
    for path in ["/api/failovers?limit=5", "/api/status-changes?limit=1000"] {
        let (status, answer) = r.get(path).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    assert_eq!(r.get("/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_among_a_concurrent_batch_fails_only_itself() {
    let r = spawn_registry(&["primary"], &[("BROKER_REGISTRY_API_TOKEN", TOKEN)]).await;
    let requests = (0..24).map(|i| {
        let bad = i % 4 == 0;
        let id = if bad {
            format!("bad\\u0000{i}")
        } else {
            format!("good{i}")
        };
        let body = format!(
            r#"{{"id":"{id}","url":"mqtt://127.0.0.1:{}","role":"optional"}}"#,
            2000 + i
        );
        let r = &r;
        async move {
            let (status, answer) = r
                .call(Method::POST, "/api/brokers", Some(&body), Some(TOKEN))
                .await;
            (bad, status, answer)
        }
    });
    for (bad, status, answer) in futures::future::join_all(requests).await {
        if bad {
            assert_error(status, &answer, 400, "invalid_text");
        } else {
            assert_eq!(status, 201, "{answer}");
        }
    }
    let ids: Vec<String> = brokers(&r).await.into_iter().map(|b| b.0).collect();
    assert_eq!(ids.len(), 1 + 18, "{ids:?}");
    assert!(
        ids.iter().all(|id| id == "mqtt1" || id.starts_with("good")),
        "{ids:?}"
    );
    assert_eq!(r.get("/health").await.0, 200);
}
