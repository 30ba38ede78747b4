//! `/api/nodes`: list and show nodes (state, readings, config, binds), and
//! bind, unbind, push the config again, decommission. Each handler is one
//! call to [`crate::pushes::Registry`].

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use serde::Deserialize;
use serde_json::{Value, json};

use common::store::node_binds::{self, Bind};
use common::store::nodes::{self, NodeView};

use crate::error::ApiError;
use crate::lifecycle::NodeState;
use crate::pushes::{BindOutcome, OpError, Registry};
use crate::routes::body;

pub fn router() -> Router<Registry> {
    Router::new()
        .route("/api/nodes", get(list))
        .route("/api/nodes/{key}", get(show))
        .route("/api/nodes/{key}/bind", post(bind))
        .route("/api/nodes/{key}/unbind", post(unbind))
        .route("/api/nodes/{key}/config", post(push_config))
        .route("/api/nodes/{key}/decommission", post(decommission))
}

/// The longest node key (a uid is at most 64, a hardware id less).
const MAX_KEY_CHARS: usize = 128;

/// The `{key}` of a path, or a 400 naming it.
fn check_key(key: &str) -> Result<(), ApiError> {
    common::runtime::http::check_text("key", key, MAX_KEY_CHARS)
}

/// A node as JSON (never its secret).
fn node_json(n: &NodeView) -> Value {
    json!({
        "id": n.id,
        "uid": n.uid,
        "hardware_id": n.hardware_id,
        "name": n.name,
        "type": n.node_type,
        "state": NodeState::of_node(n).as_str(),
        "lifecycle": n.lifecycle,
        "status": n.status,
        "greenhouse_uid": n.gh_uid,
        "zone_uid": n.zone_uid,
        "fw_version": n.fw_version,
        "capabilities": n.capabilities,
        "move_via": n.move_via,
        "observed_broker_id": n.observed_broker_id,
        "observed_at": n.observed_at,
        "last_seen_at": n.last_seen_at,
        "readings": n.unbound_readings,
        "config_reported_at": n.config_reported_at,
    })
}

/// A bind as JSON (never its secret or config).
fn bind_json(b: &Bind) -> Value {
    json!({
        "state": b.state,
        "greenhouse_uid": b.gh_uid,
        "zone_uid": b.zone_uid,
        "node_uid": b.node_uid,
        "name": b.name,
        "config_topic": b.config_topic,
        "broker_id": b.broker_id,
        "requested_at": b.requested_at,
        "expires_at": b.expires_at,
        "finished_at": b.finished_at,
    })
}

/// The node with its reported config and its latest bind.
async fn detail(registry: &Registry, node: &NodeView) -> Result<Value, ApiError> {
    let mut v = node_json(node);
    v["config"] = node.config.clone().unwrap_or(Value::Null);
    v["bind"] = node_binds::latest(&registry.pool, node.id)
        .await?
        .as_ref()
        .map_or(Value::Null, bind_json);
    Ok(v)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
}

async fn list(State(registry): State<Registry>, Query(q): Query<ListQuery>) -> ApiResult {
    let state = q
        .state
        .as_deref()
        .map(str::parse::<NodeState>)
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("`state`: {e}")))?;
    let nodes = nodes::list(&registry.pool).await?;
    Ok(ok(Value::Array(
        nodes
            .iter()
            .filter(|n| state.is_none_or(|s| NodeState::of_node(n) == s))
            .map(node_json)
            .collect(),
    )))
}

async fn show(State(registry): State<Registry>, Path(key): Path<String>) -> ApiResult {
    check_key(&key)?;
    let node = nodes::find(&registry.pool, &key).await?.ok_or_else(|| {
        ApiError::not_found(
            "node_not_found",
            format!("no node with uid or hardware id `{key}`"),
        )
    })?;
    Ok(ok(detail(&registry, &node).await?))
}

async fn bind(
    State(registry): State<Registry>,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_key(&key)?;
    let request = body::bind_request(&bytes)?;
    let (outcome, node) = registry.bind(&key, &request).await?;
    let status = match outcome {
        BindOutcome::Pending { .. } => StatusCode::ACCEPTED,
        BindOutcome::AlreadyBound => StatusCode::OK,
    };
    let mut data = detail(&registry, &node).await?;
    data["retried"] = json!(outcome == BindOutcome::Pending { retried: true });
    Ok((status, ok(data)))
}

async fn unbind(s: State<Registry>, key: Path<String>) -> ApiResult {
    step(s, key, Registry::unbind).await
}

async fn push_config(s: State<Registry>, key: Path<String>) -> ApiResult {
    step(s, key, Registry::push_config).await
}

async fn decommission(s: State<Registry>, key: Path<String>) -> ApiResult {
    step(s, key, Registry::decommission).await
}

/// A lifecycle step on node `key` that answers the node as it is after it.
async fn step(
    State(registry): State<Registry>,
    Path(key): Path<String>,
    run: impl AsyncFn(&Registry, &str) -> Result<NodeView, OpError>,
) -> ApiResult {
    check_key(&key)?;
    let node = run(&registry, &key).await?;
    Ok(ok(detail(&registry, &node).await?))
}
