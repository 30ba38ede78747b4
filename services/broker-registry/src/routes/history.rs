//! `GET /api/failovers` (failover events, newest first), `GET /api/status-changes`
//! (every broker status change, newest first), both taking `?limit=` (1 to
//! 1000; 100 and 200 by default), and `GET /api/advisor` (what an operator
//! might do, from the current figures).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use common::placement::balance;
use common::store::failover_events;
use serde::Deserialize;
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

/// The most rows one page shows.
const MAX_LIMIT: u32 = 1000;

/// `?limit=`: how many rows, newest first.
#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
}

impl Page {
    fn limit_or(&self, default: u32) -> Result<i64, ApiError> {
        match self.limit.unwrap_or(default) {
            n @ 1..=MAX_LIMIT => Ok(i64::from(n)),
            n => Err(ApiError::bad_request(
                "invalid_query",
                format!("`limit` must be between 1 and {MAX_LIMIT}, not {n}"),
            )),
        }
    }
}

async fn failovers(
    State(s): State<ApiState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let rows = failover_events::recent(&s.pool, page.limit_or(100)?).await?;
    Ok(Json(json!({ "status": "ok", "data": rows })))
}

async fn status_changes(
    State(s): State<ApiState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(c) FROM (SELECT * FROM broker_status_changes ORDER BY changed_at DESC, id DESC LIMIT $1) c",
    )
    .bind(page.limit_or(200)?)
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
    let (views, nodes) = common::placement::assignments::snapshot(&s.pool, s.cooldown).await?;
    let moves = balance::rebalance(s.strategy, &views, &nodes, s.limits);
    if !moves.is_empty() {
        // The exact call that applies this plan (the same strategy and bound).
        let body = json!({ "strategy": s.strategy.as_str(), "max_moves": s.limits.max_moves });
        let plan: Vec<Value> = moves
            .iter()
            .map(|m| json!({ "node_id": m.node_id, "from": m.from, "to": m.to }))
            .collect();
        suggestions.push(json!({
            "kind": "rebalance",
            "message": format!(
                "a {} rebalance would move {} nodes now: POST /api/rebalance {body} (the plan: GET /api/rebalance/plan)",
                s.strategy.as_str(), moves.len()
            ),
            "request": { "method": "POST", "path": "/api/rebalance", "body": body },
            "plan": plan,
        }));
    }
    let stranded = common::placement::observed::stranded(&s.pool, None).await?;
    if !stranded.is_empty() {
        let uids: Vec<&str> = stranded.iter().map(|n| n.node_uid.as_str()).collect();
        suggestions.push(json!({
            "kind": "stranded",
            "message": format!(
                "{} nodes are stranded on a dead broker and cannot be moved by us: {} (bring the broker back, or reconfigure the nodes; they are followed as soon as they reappear)",
                stranded.len(), uids.join(", ")
            ),
        }));
    }
    Ok(Json(json!({ "status": "ok", "data": suggestions })))
}
