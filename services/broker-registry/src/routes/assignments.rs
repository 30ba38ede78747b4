//! `GET /api/assignments` (the node → broker mapping, with how each node
//! can be moved and where it is observed), `GET /api/nodes/stranded` (nodes
//! that cannot be moved, on an OFFLINE broker, until they reappear), and
//! the operator's
//! rebalance: `GET /api/rebalance/plan` shows what a rebalance would move,
//! `POST /api/rebalance` applies one (`{"strategy"?, "max_moves"?}`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use common::placement::balance::{self, Move, RebalanceLimits, Strategy};
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use common::store::{node_broker_assignments, nodes};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiState, parse_body};
use crate::audit::Operator;
use crate::engine;
use crate::error::ApiError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/assignments", get(list))
        .route("/api/nodes/stranded", get(stranded))
        .route("/api/rebalance/plan", get(plan))
        .route("/api/rebalance", post(rebalance))
}

#[derive(Deserialize)]
struct Filter {
    broker: Option<String>,
}

async fn list(State(s): State<ApiState>, Query(f): Query<Filter>) -> ApiResult {
    common::runtime::http::check_opt_text("broker", f.broker.as_deref(), super::MAX_ID_CHARS)?;
    let rows = node_broker_assignments::by_uid(&s.pool, f.broker.as_deref()).await?;
    Ok(ok(rows))
}

async fn stranded(State(s): State<ApiState>) -> ApiResult {
    let rows = common::placement::observed::stranded(&s.pool, None).await?;
    Ok(ok(rows))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    max_moves: Option<usize>,
}

/// The plan for `request`, with node uids for people.
async fn make_plan(s: &ApiState, request: &PlanRequest) -> Result<(Strategy, Vec<Move>), ApiError> {
    common::runtime::http::check_opt_text("strategy", request.strategy.as_deref(), 32)?;
    let strategy = match &request.strategy {
        Some(text) => text
            .parse()
            .map_err(|e: String| ApiError::bad_request("invalid_strategy", e))?,
        None => s.strategy.current(&s.pool).await?,
    };
    let limits = RebalanceLimits {
        max_moves: request.max_moves.unwrap_or(s.limits.max_moves),
        ..s.limits
    };
    if limits.max_moves == 0 {
        return Err(ApiError::bad_request(
            "invalid_max_moves",
            "`max_moves` must be at least 1",
        ));
    }
    let (brokers, nodes) = common::placement::assignments::snapshot(&s.pool, s.cooldown).await?;
    Ok((
        strategy,
        balance::rebalance(strategy, &brokers, &nodes, limits),
    ))
}

async fn describe(s: &ApiState, strategy: Strategy, moves: &[Move]) -> Result<Value, ApiError> {
    let ids: Vec<i64> = moves.iter().map(|m| m.node_id).collect();
    let refs = nodes::refs(&s.pool, &ids).await?;
    let uid = |id: i64| refs.iter().find(|r| r.id == id).map(|r| r.uid.clone());
    let moves: Vec<Value> = moves
        .iter()
        .map(|m| json!({ "node_id": m.node_id, "node_uid": uid(m.node_id), "from": m.from, "to": m.to }))
        .collect();
    Ok(json!({ "strategy": strategy.as_str(), "moves": moves }))
}

async fn plan(State(s): State<ApiState>, Query(q): Query<PlanRequest>) -> ApiResult {
    let (strategy, moves) = make_plan(&s, &q).await?;
    Ok(ok(describe(&s, strategy, &moves).await?))
}

async fn rebalance(State(s): State<ApiState>, who: Operator, body: Bytes) -> ApiResult {
    let request: PlanRequest = if body.is_empty() {
        PlanRequest::default()
    } else {
        parse_body(&body)?
    };
    let (strategy, moves) = make_plan(&s, &request).await?;
    let written = engine::apply(
        &s.pool,
        &s.brokers,
        &moves,
        strategy,
        secrecy::ExposeSecret::expose_secret(&s.default_secret),
    )
    .await?;
    let applied: Vec<Move> = moves
        .into_iter()
        .filter(|m| written.iter().any(|w| w.node_id == m.node_id))
        .collect();
    let data = describe(&s, strategy, &applied).await?;
    who.record(&s.pool, "rebalance", None, data.clone()).await?;
    Ok(ok(data))
}
