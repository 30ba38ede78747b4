//! `GET /`: the load-balancing dashboard, one self-contained page (no
//! external scripts or styles) that polls the JSON API.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use super::ApiState;

const PAGE: &str = include_str!("dashboard.html");

pub fn router() -> Router<ApiState> {
    Router::new().route("/", get(|| async { Html(PAGE) }))
}
