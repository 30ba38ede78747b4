//! The HTTP part every service mounts: `GET /metrics` (Prometheus text),
//! `GET /health` (each dependency and its state; 503 when a required one is
//! down), the layers every router gets ([`service_router`]: JSON for every
//! error, body and URI limits, request metrics), the API's access check
//! ([`api_router`]), the text check for what goes to PostgreSQL
//! ([`check_text`]), and the serve loop with graceful shutdown.

mod errors;
mod health;
mod recorder;
#[cfg(test)]
mod tests;
mod text;

pub use errors::*;
pub use health::*;
pub use recorder::*;
pub use text::*;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics as m;

/// `/metrics` and `/health`, to merge into a service's router.
pub fn ops_router(health: Health) -> Router {
    metrics_handle();
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(health_report))
        .with_state(health)
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

/// Middleware: counts requests by matched route, method and status, and
/// times them. Unmatched paths are labelled `unmatched`, keeping labels bounded.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    // One span per request: every log line of its handling carries them.
    let span = tracing::info_span!("http", %method, %route, status = tracing::field::Empty);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16().to_string();
    span.record("status", status.as_str());
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
