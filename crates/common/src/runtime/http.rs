//! The HTTP part every service mounts: `GET /metrics` (Prometheus text),
//! `GET /health` (each dependency and its state; 503 when a required one is
//! down), the layers every router gets ([`service_router`]: JSON for every
//! error, body and URI limits, request metrics), the API's access check
//! ([`api_router`]), the text check for what goes to PostgreSQL
//! ([`check_text`]), and the serve loop with graceful shutdown.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics as m;
use crate::mqtt::pool::BrokerPool;
use crate::runtime::api_error::ApiError;

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The sum of every series of `name` in a Prometheus text (benchmarks, and
/// node-sim's totals at stop, read their in-process counters this way).
/// `name` may carry labels: `uplink_received_total{kind="telemetry"}`.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// Histogram samples wait in a buffer until they are folded into their
/// buckets, which a scrape does, or the upkeep this starts: without it a
/// process nobody scrapes would keep every sample it ever recorded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A full-name matcher is tried before any suffix one.
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), m::LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .set_buckets_for_metric(Matcher::Full(m::TELEMETRY_LAG.into()), m::LAG_BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP);
                        upkeep.run_upkeep();
                    }
                })
                .expect("a thread can be started");
            handle
        })
        .clone()
}

/// Something a service depends on, checked by `/health`.
#[derive(Clone)]
pub enum Dependency {
    Postgres(PgPool),
    Redis(deadpool_redis::Pool),
    /// Every broker of the pool; up when at least one is connected.
    Brokers(BrokerPool),
    /// A check of the service's own: its detail and whether it is up.
    Custom {
        name: &'static str,
        check: std::sync::Arc<dyn Fn() -> (Value, bool) + Send + Sync>,
    },
}

impl Dependency {
    async fn check(&self) -> (String, Value, bool) {
        match self {
            Dependency::Postgres(pool) => {
                let up = crate::store::db::ping(pool).await;
                ("postgres".into(), json!({ "state": state(up) }), up)
            }
            Dependency::Redis(pool) => {
                let up = crate::store::redis::ping(pool).await;
                ("redis".into(), json!({ "state": state(up) }), up)
            }
            Dependency::Brokers(brokers) => {
                let all = brokers.all();
                let each: serde_json::Map<String, Value> = all
                    .iter()
                    .map(|c| (c.broker_id().to_owned(), json!(state(c.is_connected()))))
                    .collect();
                let up = all.iter().any(|c| c.is_connected());
                (
                    "mqtt".into(),
                    json!({ "state": state(up), "brokers": each }),
                    up,
                )
            }
            Dependency::Custom { name, check } => {
                let (mut detail, up) = check();
                detail["state"] = json!(state(up));
                ((*name).to_owned(), detail, up)
            }
        }
    }
}

fn state(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

/// What `/health` reports for one service.
#[derive(Clone)]
pub struct Health {
    service: &'static str,
    /// (dependency, required)
    dependencies: Vec<(Dependency, bool)>,
}

impl Health {
    pub fn new(service: &'static str) -> Self {
        Health {
            service,
            dependencies: Vec::new(),
        }
    }

    /// A dependency without which the service cannot do its job: 503 when down.
    pub fn require(mut self, d: Dependency) -> Self {
        self.dependencies.push((d, true));
        self
    }

    /// A dependency that is reported but does not fail the check.
    pub fn optional(mut self, d: Dependency) -> Self {
        self.dependencies.push((d, false));
        self
    }

    async fn report(&self) -> (bool, Value) {
        let checks =
            futures::future::join_all(self.dependencies.iter().map(|(d, _)| d.check())).await;
        let mut healthy = true;
        let mut deps = serde_json::Map::new();
        for ((name, mut detail, up), (_, required)) in checks.into_iter().zip(&self.dependencies) {
            healthy &= up || !required;
            detail["required"] = json!(required);
            deps.insert(name, detail);
        }
        let body = json!({
            "service": self.service,
            "status": if healthy { "ok" } else { "unavailable" },
            "version": env!("CARGO_PKG_VERSION"),
            "dependencies": deps,
        });
        (healthy, body)
    }
}

async fn health_report(State(health): State<Health>) -> Response {
    let (healthy, body) = health.report().await;
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics_text() -> String {
    metrics_handle().render()
}

/// `/metrics` and `/health`, to merge into a service's router.
pub fn ops_router(health: Health) -> Router {
    metrics_handle();
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(health_report))
        .with_state(health)
}

/// The largest request body any service takes: every API body is a small
/// JSON object (a command, a bind, a broker). Larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest request target (path and query) any service takes: a JSON
/// 414 beyond it. hyper refuses a target of 64 KiB or more itself, with an
/// empty 414 (and a request head over about 400 KiB with an empty 431),
/// before any service code runs; only that far-off limit is not JSON.
pub const MAX_URI_BYTES: usize = 8 * 1024;

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "status": "error", "code": code, "message": message })),
    )
        .into_response()
}

async fn route_not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such endpoint; see the README for the API",
    )
}

async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Whether `headers` say the body is JSON (`application/json`, `…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// Middleware: the checks every request passes before its handler: a target
/// no longer than [`MAX_URI_BYTES`] (414), and a body, if it says what it
/// is, that is JSON (415). A body without `Content-Type` is taken as JSON.
pub async fn check_request(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return json_error(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request path and query are {target} bytes; the limit is {MAX_URI_BYTES}"),
        );
    }
    let has_body = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_none_or(|n| n > 0);
    if has_body && request.headers().contains_key(CONTENT_TYPE) && !is_json(request.headers()) {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        );
    }
    next.run(request).await
}

/// The `code` of an error answer that was not ours (an extractor's or the
/// framework's rejection), from its status and text.
fn rejection_code(status: StatusCode, text: &str) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST if text.starts_with("Failed to deserialize query string") => {
            "invalid_query"
        }
        StatusCode::BAD_REQUEST
            if text.starts_with("Invalid URL") || text.contains("path argument") =>
        {
            "invalid_path"
        }
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal_error",
        _ => "request_refused",
    }
}

/// Middleware: every error answer is JSON, in the one shape of
/// [`crate::runtime::api_error::ApiError`]. Handlers' errors already are; this turns
/// the rest (axum's rejections of a path, query or body, a body over
/// [`MAX_BODY_BYTES`]) into it, keeping their status and their text as the
/// message, which names what was wrong (e.g. the query field).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are a line; more is cut, not buffered.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    } else {
        text
    };
    let mut answer = json_error(status, rejection_code(status, &message), &message);
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer
}

/// The layers every service's router gets, in one place: JSON 404 and 405,
/// the body limit (413), the request checks (414, 415), JSON for every
/// other error, and request metrics ([`track_requests`]).
pub fn service_router(router: Router) -> Router {
    router
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(check_request))
        .layer(axum::middleware::from_fn(track_requests))
}

/// A service without an API of its own: `/metrics` and `/health` with the
/// common layers ([`service_router`]).
pub fn ops_only_router(health: Health) -> Router {
    service_router(ops_router(health))
}

/// A service with an API: `api` behind `access` (writes need the bearer
/// token, reads as configured), `/metrics` and `/health` beside it, open, and
/// the common layers ([`service_router`]).
pub fn api_router(api: Router, access: crate::runtime::auth::Access, health: Health) -> Router {
    service_router(
        api.layer(axum::middleware::from_fn_with_state(
            access,
            crate::runtime::auth::require_access,
        ))
        .merge(ops_router(health)),
    )
}

/// Checks a string from a request (path, query or body) before it goes near
/// PostgreSQL: a NUL character (which PostgreSQL refuses in text) or more than
/// `max_chars` characters is a 400 naming `field`. Every service's input
/// validation calls this.
pub fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!("`{field}` contains a NUL character (\\u0000), which cannot be stored"),
        ));
    }
    if value.len() > max_chars && value.chars().count() > max_chars {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!("`{field}` is longer than {max_chars} characters"),
        ));
    }
    Ok(())
}

/// [`check_text`] on every string of a JSON document, keys included, each
/// named by its path from `field` (`channels[0].unit`; `field` empty for a
/// whole body): PostgreSQL refuses a NUL in `jsonb` as in text.
pub fn check_json_text(field: &str, value: &Value, max_chars: usize) -> Result<(), ApiError> {
    let join = |key: &str| {
        if field.is_empty() {
            key.to_owned()
        } else {
            format!("{field}.{key}")
        }
    };
    match value {
        Value::String(s) => check_text(field, s, max_chars),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_text(&format!("{field}[{i}]"), v, max_chars)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let path = join(&k.escape_debug().to_string());
            check_text(&path, k, max_chars)?;
            check_json_text(&path, v, max_chars)
        }),
        _ => Ok(()),
    }
}

/// [`check_text`] for an optional value.
pub fn check_opt_text(field: &str, value: Option<&str>, max_chars: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| check_text(field, v, max_chars))
}

/// Middleware: counts requests by matched route, method and status, and
/// times them. Unmatched paths are labelled `unmatched`, keeping labels bounded.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(m::HTTP_REQUEST_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(m::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// Serves `router` on `listener` until `shutdown`, finishing requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Bytes;
    use axum::extract::{Path, Query};
    use axum::routing::post;
    use serde::Deserialize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::runtime::auth::{Access, ApiToken};

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
}
