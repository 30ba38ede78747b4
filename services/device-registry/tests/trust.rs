//! The API's trust rules (issue 11): writes always need the bearer token,
//! reads as configured; every error is JSON; strings PostgreSQL would refuse
//! are a 400 naming the field and never fail the valid requests around them.

mod helpers;

use helpers::{FakeNode, TOKEN, TestRegistry, spawn_registry};
use reqwest::Method;
use serde_json::Value;

const HW: &str = "esp32-TRUST0000001";
const BIND: &str = r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","node_uid":"nd-trust-1"}"#;

async fn binds(registry: &TestRegistry) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM node_binds")
        .fetch_one(registry.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_reads_leave_every_write_behind_the_token() {
    let registry = spawn_registry(1, &[("HTTP_READS_REQUIRE_TOKEN", "false")]).await;
    let node = FakeNode::connect(&registry.brokers[0], HW).await;
    node.register(&registry, "ph").await;
    let (status, answer) = registry.call(Method::GET, "/api/nodes", None, None).await;
    assert_eq!(status, 200, "{answer}");
    for token in [None, Some("wrong-token")] {
        for (path, body) in [
            (format!("/api/nodes/{HW}/bind"), Some(BIND)),
            (format!("/api/nodes/{HW}/unbind"), None),
            (format!("/api/nodes/{HW}/config"), None),
            (format!("/api/nodes/{HW}/decommission"), None),
        ] {
            let (status, answer) = registry.call(Method::POST, &path, body, token).await;
            assert_eq!(status, 401, "{path}: {answer}");
            assert_eq!(answer["code"], "unauthorized", "{answer}");
        }
    }
    assert_eq!(binds(&registry).await, 0);
    let (_, n) = registry.get(&format!("/api/nodes/{HW}")).await;
    assert_eq!(n["data"]["state"], "unbound", "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_strings_name_the_field_and_fail_only_themselves() {
    let registry = spawn_registry(1, &[]).await;
    let node = FakeNode::connect(&registry.brokers[0], HW).await;
    node.register(&registry, "ph").await;
    let long_key = "k".repeat(200);
    let bad: Vec<(String, Option<String>, &str)> = vec![
        ("/api/nodes/esp32%00x".into(), None, "`key`"),
        (format!("/api/nodes/{long_key}"), None, "`key`"),
        (format!("/api/nodes/{HW}%00/bind"), Some(BIND.into()), "`key`"),
        (
            format!("/api/nodes/{HW}/bind"),
            Some(r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","name":"Tank\u0000A"}"#.into()),
            "`name`",
        ),
        (
            format!("/api/nodes/{HW}/bind"),
            Some(
                r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","channels":[{"name":"ph_sensor","type":"SENSOR","metric":"PH","unit":"p\u0000H"}]}"#
                    .into(),
            ),
            "`channels[0].unit`",
        ),
        (
            format!("/api/nodes/{HW}/bind"),
            Some(format!(
                r#"{{"greenhouse_uid":"gh-1","zone_uid":"zn-1","extra_field_{}":1}}"#,
                "x".repeat(300)
            )),
            "longer than",
        ),
    ];
    // Each bad request 4 times among 24 valid reads, all at once.
    let mut calls = Vec::new();
    for round in 0..4 {
        for (path, body, field) in &bad {
            let method = if body.is_some() {
                Method::POST
            } else {
                Method::GET
            };
            calls.push((method, path.clone(), body.clone(), Some(*field)));
        }
        for _ in 0..6 {
            let path = if round % 2 == 0 {
                format!("/api/nodes/{HW}")
            } else {
                "/api/nodes".into()
            };
            calls.push((Method::GET, path, None, None));
        }
    }
    let mut tasks = Vec::new();
    for (method, path, body, _) in &calls {
        let mut request = registry
            .http
            .request(method.clone(), format!("{}{path}", registry.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.clone());
        }
        tasks.push(tokio::spawn(async move {
            let r = request.send().await.expect("request");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    for ((method, path, _, field), (status, answer)) in calls.iter().zip(answers) {
        let shown = &path[..path.len().min(48)];
        match field {
            Some(field) => {
                assert_eq!(status, 400, "{method} {shown}: {answer}");
                assert_eq!(answer["code"], "invalid_text", "{answer}");
                let message = answer["message"].as_str().unwrap_or_default();
                assert!(message.contains(field), "{field}: {answer}");
            }
            None => assert_eq!(status, 200, "{method} {shown}: {answer}"),
        }
    }
    assert_eq!(binds(&registry).await, 0, "no refused bind was stored");
    // The valid bind after them goes through.
    let (status, answer) = registry.post(&format!("/api/nodes/{HW}/bind"), BIND).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(binds(&registry).await, 1);
    assert_eq!(registry.get("/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let registry = spawn_registry(1, &[]).await;
    let long = format!("/api/nodes/{}", "x".repeat(9000));
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(70_000));
    for (method, path, body, status, code) in [
        (
            Method::GET,
            "/api/nope".to_owned(),
            None,
            404,
            "route_not_found",
        ),
        (
            Method::DELETE,
            "/api/nodes".to_owned(),
            None,
            405,
            "method_not_allowed",
        ),
        (Method::GET, long, None, 414, "uri_too_long"),
        (
            Method::POST,
            format!("/api/nodes/{HW}/bind"),
            Some(big),
            413,
            "body_too_large",
        ),
        (
            Method::GET,
            "/api/nodes/%FF".to_owned(),
            None,
            400,
            "invalid_path",
        ),
        (
            Method::GET,
            "/api/nodes/unknown-node".to_owned(),
            None,
            404,
            "node_not_found",
        ),
    ] {
        let (got, answer): (u16, Value) = registry
            .call(method.clone(), &path, body.as_deref(), Some(TOKEN))
            .await;
        let shown = &path[..path.len().min(48)];
        let what = format!("{method} {shown}");
        testkit::http::assert_error(&what, (got, &answer), status, code);
    }
}
