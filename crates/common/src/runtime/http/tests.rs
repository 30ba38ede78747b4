//! The HTTP surface's cases: errors, health, metrics, text checks.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::routing::post;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::runtime::api_error::ApiError;
use crate::runtime::auth::{Access, ApiToken};
use serde_json::Value;

#[derive(Deserialize)]
struct Page {
    #[allow(dead_code)]
    limit: Option<u32>,
}

async fn item(Path(id): Path<String>, Query(_): Query<Page>) -> Result<String, ApiError> {
    check_text("id", &id, 64)?;
    Ok(id)
}

async fn write(body: Bytes) -> String {
    format!("{} bytes", body.len())
}

/// A router like a service's, served on a free port; its port.
async fn serve_test_api(reads_require_token: bool) -> u16 {
    let api = Router::new()
        .route("/api/items/{id}", get(item))
        .route("/api/items", post(write));
    let access = Access::new(ApiToken(Some(Arc::from("t0k3n"))), reads_require_token);
    let router = api_router(api, access, Health::new("test"));
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, router, CancellationToken::new()));
    port
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body`; the status, the Content-Type and the body.
async fn call(port: u16, head: &str, body: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "error", "{body}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_error_is_json() {
    let port = serve_test_api(false).await;
    let auth = "Authorization: Bearer t0k3n";
    let long = "a".repeat(MAX_URI_BYTES + 1);
    let big = vec![b'x'; MAX_BODY_BYTES + 1];
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (
            "GET /nowhere HTTP/1.1".into(),
            vec![],
            404,
            "route_not_found",
        ),
        (
            "GET /%FF%FE HTTP/1.1".into(),
            vec![],
            404,
            "route_not_found",
        ),
        (
            "DELETE /health HTTP/1.1".into(),
            vec![],
            405,
            "method_not_allowed",
        ),
        (
            format!("POST /api/items HTTP/1.1\r\n{auth}"),
            big,
            413,
            "body_too_large",
        ),
        (
            format!("GET /api/items/{long} HTTP/1.1"),
            vec![],
            414,
            "uri_too_long",
        ),
        (
            format!("GET /api/items/x?q={long} HTTP/1.1"),
            vec![],
            414,
            "uri_too_long",
        ),
        (
            "GET /api/items/%FF HTTP/1.1".into(),
            vec![],
            400,
            "invalid_path",
        ),
        (
            "GET /api/items/x?limit=abc HTTP/1.1".into(),
            vec![],
            400,
            "invalid_query",
        ),
        (
            "GET /api/items/a%00b HTTP/1.1".into(),
            vec![],
            400,
            "invalid_text",
        ),
        (
            format!("POST /api/items HTTP/1.1\r\n{auth}\r\nContent-Type: text/plain"),
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST /api/items HTTP/1.1".into(),
            b"{}".to_vec(),
            401,
            "unauthorized",
        ),
        (
            "POST /api/items HTTP/1.1\r\nAuthorization: Bearer wrong".into(),
            b"{}".to_vec(),
            401,
            "unauthorized",
        ),
    ];
    for (head, body, status, expected) in cases {
        let (got, content_type, answer) = call(port, &head, &body).await;
        let shown = &head[..head.len().min(60)];
        assert_eq!(got, status, "{shown}: {answer}");
        assert_eq!(content_type, "application/json", "{shown}: {answer}");
        assert_eq!(code(&answer), expected, "{shown}: {answer}");
    }
    // The query error names the field.
    let (_, _, answer) = call(port, "GET /api/items/x?limit=abc HTTP/1.1", b"").await;
    assert!(answer.contains("limit"), "{answer}");
}

#[tokio::test]
async fn valid_requests_pass() {
    let port = serve_test_api(false).await;
    let (status, _, body) = call(port, "GET /api/items/x?limit=5 HTTP/1.1", b"").await;
    assert_eq!((status, body.as_str()), (200, "x"));
    for head in [
        "POST /api/items HTTP/1.1\r\nAuthorization: Bearer t0k3n\r\nContent-Type: application/json",
        "POST /api/items HTTP/1.1\r\nAuthorization: bearer t0k3n",
    ] {
        let (status, _, body) = call(port, head, b"{}").await;
        assert_eq!((status, body.as_str()), (200, "2 bytes"), "{head}");
    }
    let (status, _, _) = call(port, "GET /health HTTP/1.1", b"").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn guarded_reads_need_the_token_health_does_not() {
    let port = serve_test_api(true).await;
    let (status, _, body) = call(port, "GET /api/items/x HTTP/1.1", b"").await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "unauthorized");
    let (status, _, _) = call(
        port,
        "GET /api/items/x HTTP/1.1\r\nAuthorization: Bearer t0k3n",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    for open in ["/health", "/metrics"] {
        let (status, _, _) = call(port, &format!("GET {open} HTTP/1.1"), b"").await;
        assert_eq!(status, 200, "{open}");
    }
}

#[test]
fn text_checks_name_the_field() {
    check_text("name", "Tank A", 8).unwrap();
    check_text("name", "ääää", 4).unwrap();
    for (value, needle) in [("a\0b", "NUL"), ("abcdefghi", "longer than 8")] {
        let ApiError::BadRequest { code, message } = check_text("name", value, 8).unwrap_err()
        else {
            panic!("not a 400");
        };
        assert_eq!(code, "invalid_text");
        assert!(
            message.contains("`name`") && message.contains(needle),
            "{message}"
        );
    }
    check_opt_text("name", None, 1).unwrap();
    check_json_text("", &serde_json::json!({"a": ["x", {"b": "y"}], "n": 1}), 8).unwrap();
    for (doc, path) in [
        (serde_json::json!({"a": ["x", {"b": "y\u{0}"}]}), "`a[1].b`"),
        (
            serde_json::json!({"channels": [{"unit": "m".repeat(9)}]}),
            "`channels[0].unit`",
        ),
        (serde_json::json!({"k\u{0}": 1}), "`k\\0`"),
    ] {
        let message = check_json_text("", &doc, 8).unwrap_err().to_string();
        assert!(message.contains(path), "{doc}: {message}");
    }
    assert!(check_opt_text("name", Some("\0"), 1).is_err());
}
