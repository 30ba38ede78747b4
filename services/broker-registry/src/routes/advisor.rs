//! `GET /api/advisor`: a round of the advisor over the current figures (its
//! proposals and recent refusals, stored); `POST
//! /api/advisor/suggestions/{id}/apply` (token): applies a proposal.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use serde_json::json;

use super::ApiState;
use crate::advisor::run;
use crate::audit::Operator;
use crate::error::ApiError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/advisor", get(advise))
        .route("/api/advisor/suggestions/{id}/apply", post(apply))
}

async fn advise(State(s): State<ApiState>) -> ApiResult {
    let report = run::run(&s).await?;
    Ok(ok(json!({
        "generated_at": chrono::Utc::now(),
        "strategy": s.strategy.get().as_str(),
        "suggestions": report.suggestions,
        "refused": report.refused,
        "model": report.model,
    })))
}

async fn apply(State(s): State<ApiState>, who: Operator, Path(id): Path<String>) -> ApiResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "a suggestion id is a number"))?;
    let done = run::apply(&s, id, &who).await?;
    Ok(ok(done))
}
