//! `GET /api/failovers` (failover events, newest first), `GET /api/status-changes`
//! (every broker status change, newest first) and `GET /api/advisor` (what an
//! operator might do, from the current figures).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::balance;
use serde_json::{Value, json};

use super::ApiState;

use crate::error::ApiError;
use crate::registry;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/failovers", get(failovers))
        .route("/api/status-changes", get(status_changes))
        .route("/api/advisor", get(advisor))
}

async fn failovers(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(f) FROM (SELECT * FROM failover_events ORDER BY started_at DESC, id DESC LIMIT 100) f",
    )
    .fetch_all(&s.pool)
    .await?;
    Ok(Json(json!({ "status": "ok", "data": rows })))
}

async fn status_changes(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(c) FROM (SELECT * FROM broker_status_changes ORDER BY changed_at DESC, id DESC LIMIT 200) c",
    )
    .fetch_all(&s.pool)
    .await?;
    Ok(Json(json!({ "status": "ok", "data": rows })))
}

/// Suggestions only; nothing is changed. Never suggests turning failover off
/// or a broker that does not exist (the seed's rules for its advisor).
async fn advisor(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let brokers = registry::list(&s.pool).await?;
    let mut suggestions = Vec::new();
    for b in &brokers {
        match b.status.as_str() {
            "CRITICAL" if b.nodes > 0 => suggestions.push(json!({
                "broker": b.id, "kind": "drain",
                "message": format!("{} is CRITICAL with {} nodes: drain it (PATCH /api/brokers/{} {{\"draining\":true}})", b.id, b.nodes, b.id),
            })),
            "DEGRADED" => suggestions.push(json!({
                "broker": b.id, "kind": "watch",
                "message": format!("{} is DEGRADED (load index {:.3}, latency {:?} ms)", b.id, b.load_index, b.latency_ms),
            })),
            _ => {}
        }
    }
    let (views, nodes) = common::assignments::snapshot(&s.pool, s.cooldown).await?;
    let moves = balance::rebalance(s.strategy, &views, &nodes, s.limits);
    if !moves.is_empty() {
        suggestions.push(json!({
            "kind": "rebalance",
            "message": format!("a {} rebalance would move {} nodes now (GET /api/rebalance/plan, POST /api/rebalance)", s.strategy.as_str(), moves.len()),
        }));
    }
    Ok(Json(json!({ "status": "ok", "data": suggestions })))
}
