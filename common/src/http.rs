//! The HTTP part every service mounts: `GET /metrics` (Prometheus text),
//! `GET /health` (each dependency and its state; 503 when a required one is
//! down), a request-metrics middleware, and the serve loop with graceful
//! shutdown.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::brokers::BrokerPool;
use crate::metrics as m;

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use.
///
/// Histogram samples wait in a buffer until they are folded into their
/// buckets, which a scrape does, or the upkeep this starts: without it a
/// process nobody scrapes would keep every sample it ever recorded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), m::LATENCY_BUCKETS)
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
                let up = crate::db::ping(pool).await;
                ("postgres".into(), json!({ "state": state(up) }), up)
            }
            Dependency::Redis(pool) => {
                let up = crate::redis_pool::ping(pool).await;
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

/// A service with an API: `api` behind the bearer `token`, `/metrics` and
/// `/health` beside it, JSON errors for unknown routes and methods, and every
/// request counted ([`track_requests`]).
pub fn api_router(api: Router, token: crate::auth::ApiToken, health: Health) -> Router {
    api.layer(axum::middleware::from_fn_with_state(
        token,
        crate::auth::require_token,
    ))
    .merge(ops_router(health))
    .fallback(route_not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(axum::middleware::from_fn(track_requests))
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
