//! `GET /api/actions?limit=N`: the audit trail of the API's writes, newest
//! first; `GET /api/strategy` and `PUT /api/strategy` (token,
//! `{"strategy"}`): the assignment strategy in force, changed at run time
//! for every instance, and audited.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use common::placement::balance::Strategy;
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use common::store::operator_actions;
use serde::Deserialize;
use serde_json::{Value, json};

use super::history::Page;
use super::{ApiState, parse_body};
use crate::audit::Operator;
use crate::error::ApiError;
use crate::strategy::AVAILABLE;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/actions", get(actions))
        .route("/api/strategy", get(strategy).put(set_strategy))
}

async fn actions(State(s): State<ApiState>, Query(page): Query<Page>) -> ApiResult {
    let rows = operator_actions::recent(&s.pool, page.limit_or(100)?).await?;
    Ok(ok(rows))
}

fn described(strategy: Strategy) -> Json<Value> {
    ok(json!({ "strategy": strategy.as_str(), "available": AVAILABLE.map(Strategy::as_str) }))
}

async fn strategy(State(s): State<ApiState>) -> ApiResult {
    Ok(described(s.strategy.current(&s.pool).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyBody {
    strategy: String,
}

async fn set_strategy(State(s): State<ApiState>, who: Operator, body: Bytes) -> ApiResult {
    let body: StrategyBody = parse_body(&body)?;
    let strategy: Strategy = body
        .strategy
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_strategy", e))?;
    let previous = s.strategy.current(&s.pool).await?;
    s.strategy.set(&s.pool, strategy, &who.0).await?;
    who.record(
        &s.pool,
        "strategy.set",
        Some(strategy.as_str()),
        json!({ "strategy": strategy.as_str(), "previous": previous.as_str() }),
    )
    .await?;
    Ok(described(strategy))
}
