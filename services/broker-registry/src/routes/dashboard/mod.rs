//! `GET /`: the operator's dashboard, and its script and style under
//! `/dashboard/`. Plain HTML, CSS and JavaScript compiled into the binary:
//! nothing is fetched from elsewhere and nothing is built. The page reads the
//! JSON API and follows `GET /api/stream` (see `routes::live`).

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::ApiState;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const CHART: &str = include_str!("chart.js");
const STYLE: &str = include_str!("style.css");

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route(
            "/dashboard/chart.js",
            get(|| async { asset("text/javascript", CHART) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css", STYLE) }),
        )
}

/// A static file; `no-cache` so a new binary's page is picked up at once.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
