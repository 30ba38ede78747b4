//! `GET /api/failovers` (failover events, newest first), `GET /api/status-changes`
//! (every broker status change, newest first), both taking `?limit=` (1 to
//! 1000; 100 and 200 by default).

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use common::store::{broker_status_changes, failover_events};
use serde::Deserialize;

use super::ApiState;

use crate::error::ApiError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/failovers", get(failovers))
        .route("/api/status-changes", get(status_changes))
}

/// The most rows one page shows.
const MAX_LIMIT: u32 = 1000;

/// `?limit=`: how many rows, newest first.
#[derive(Deserialize)]
pub struct Page {
    limit: Option<u32>,
}

impl Page {
    pub fn limit_or(&self, default: u32) -> Result<i64, ApiError> {
        match self.limit.unwrap_or(default) {
            n @ 1..=MAX_LIMIT => Ok(i64::from(n)),
            n => Err(ApiError::bad_request(
                "invalid_query",
                format!("`limit` must be between 1 and {MAX_LIMIT}, not {n}"),
            )),
        }
    }
}

async fn failovers(State(s): State<ApiState>, Query(page): Query<Page>) -> ApiResult {
    let rows = failover_events::recent(&s.pool, page.limit_or(100)?).await?;
    Ok(ok(rows))
}

async fn status_changes(State(s): State<ApiState>, Query(page): Query<Page>) -> ApiResult {
    let rows = broker_status_changes::latest_json(&s.pool, page.limit_or(200)?).await?;
    Ok(ok(rows))
}
