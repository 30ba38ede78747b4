//! The simulator's own HTTP routes: the nodes and their readings, and the
//! fault settings, readable and changeable while it runs (changes need
//! `SIM_API_TOKEN` when it is set: see [`common::runtime::auth::Access`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use crate::faults::{FaultConfig, Faults};
use crate::firmware::FirmwareNode;
use crate::layout::{ChannelSpec, NodeKind};
use crate::node::SimNode;
use crate::settings::{check_delay, check_probability};

/// What the routes need.
#[derive(Clone)]
pub struct ApiState {
    pub nodes: Arc<[SimNode]>,
    /// Firmware-mode nodes (empty in classic mode).
    pub firmware: Arc<[FirmwareNode]>,
    pub faults: Arc<Faults>,
}

/// `/sim/nodes`, `/sim/firmware-nodes` and `/sim/faults`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/sim/nodes", get(list_nodes))
        .route("/sim/firmware-nodes", get(list_firmware_nodes))
        .route("/sim/faults", get(get_faults).put(put_faults))
        .with_state(state)
}

/// An answer other than success: the one error shape of every service.
pub use common::runtime::api_error::ApiError;

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// One node as `GET /sim/nodes` shows it.
#[derive(Debug, Serialize)]
pub struct NodeView {
    pub uid: String,
    pub zone: String,
    pub kind: NodeKind,
    pub channels: Vec<ChannelSpec>,
    pub connected: bool,
    /// The broker it is on now (a move it followed changes it).
    pub broker_url: String,
    /// Current reading per sensor channel.
    pub values: BTreeMap<&'static str, f64>,
    pub commands_executed: u64,
}

async fn list_nodes(State(state): State<ApiState>) -> Json<Vec<NodeView>> {
    Json(
        state
            .nodes
            .iter()
            .map(|n| NodeView {
                uid: n.spec().uid.clone(),
                zone: n.spec().zone.clone(),
                kind: n.spec().kind,
                channels: n.spec().channels().to_vec(),
                connected: n.is_connected(),
                broker_url: n.link().broker_url(),
                values: n.readings(),
                commands_executed: n.commands_executed(),
            })
            .collect(),
    )
}

/// One firmware-mode node as `GET /sim/firmware-nodes` shows it.
#[derive(Debug, Serialize)]
pub struct FirmwareNodeView {
    pub hardware_id: String,
    pub kind: NodeKind,
    /// Where it publishes now: `gh-temp`/`zn-temp`/hardware id until bound.
    pub gh: String,
    pub zone: String,
    pub node: String,
    pub bound: bool,
    pub connected: bool,
    pub time_synced: bool,
    pub broker_url: Option<String>,
    pub commands_executed: u64,
}

async fn list_firmware_nodes(State(state): State<ApiState>) -> Json<Vec<FirmwareNodeView>> {
    Json(
        state
            .firmware
            .iter()
            .map(|n| {
                let ns = n.namespace();
                FirmwareNodeView {
                    hardware_id: n.hardware_id().to_owned(),
                    kind: n.spec().kind,
                    bound: !ns.is_temp(),
                    gh: ns.gh,
                    zone: ns.zone,
                    node: ns.node,
                    connected: n.is_connected(),
                    time_synced: n.is_time_synced(),
                    broker_url: n.broker_url(),
                    commands_executed: n.commands_executed(),
                }
            })
            .collect(),
    )
}

async fn get_faults(State(state): State<ApiState>) -> Json<FaultConfig> {
    Json(state.faults.get())
}

/// Every field optional; the ones given replace the current values.
async fn put_faults(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<FaultConfig>, ApiError> {
    let patch: Value = serde_json::from_slice(&body)
        .map_err(|e| bad("invalid_json", format!("body is not JSON: {e}")))?;
    let updated = apply_patch(state.faults.get(), &patch)?;
    state.faults.set(updated);
    info!(
        drop_responses = updated.drop_responses,
        duplicate_responses = updated.duplicate_responses,
        response_delay_ms = updated.response_delay_ms,
        "Faults changed."
    );
    Ok(Json(updated))
}

/// `current` with the fields of `patch` applied, each checked and named on error.
fn apply_patch(mut current: FaultConfig, patch: &Value) -> Result<FaultConfig, ApiError> {
    let fields = patch
        .as_object()
        .ok_or_else(|| bad("invalid_body", "body must be a JSON object"))?;
    for (name, value) in fields {
        match name.as_str() {
            "drop_responses" | "duplicate_responses" => {
                let p = value
                    .as_f64()
                    .ok_or_else(|| bad("invalid_field", format!("{name} must be a number")))?;
                check_probability(name, p).map_err(|m| bad("invalid_field", m))?;
                if name == "drop_responses" {
                    current.drop_responses = p;
                } else {
                    current.duplicate_responses = p;
                }
            }
            "response_delay_ms" => {
                let ms = value.as_u64().ok_or_else(|| {
                    bad(
                        "invalid_field",
                        "response_delay_ms must be a non-negative integer",
                    )
                })?;
                check_delay(name, ms).map_err(|m| bad("invalid_field", m))?;
                current.response_delay_ms = ms;
            }
            other => {
                return Err(bad(
                    "unknown_field",
                    format!(
                        "unknown field `{other}`; use drop_responses, duplicate_responses, response_delay_ms"
                    ),
                ));
            }
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NONE: FaultConfig = FaultConfig {
        drop_responses: 0.0,
        duplicate_responses: 0.0,
        response_delay_ms: 0,
    };

    #[test]
    fn patches_apply_only_given_fields() {
        let c = apply_patch(NONE, &json!({"drop_responses": 1.0})).unwrap();
        assert_eq!(c.drop_responses, 1.0);
        assert_eq!(c.duplicate_responses, 0.0);
        let c = apply_patch(
            c,
            &json!({"duplicate_responses": 0.5, "response_delay_ms": 20}),
        )
        .unwrap();
        assert_eq!(
            c,
            FaultConfig {
                drop_responses: 1.0,
                duplicate_responses: 0.5,
                response_delay_ms: 20
            }
        );
        assert_eq!(apply_patch(c, &json!({})).unwrap(), c);
    }

    #[test]
    fn bad_patches_name_the_field() {
        for (patch, field) in [
            (json!({"drop_responses": 1.5}), "drop_responses"),
            (json!({"drop_responses": "x"}), "drop_responses"),
            (json!({"duplicate_responses": -0.1}), "duplicate_responses"),
            (json!({"response_delay_ms": -1}), "response_delay_ms"),
            (json!({"response_delay_ms": 1.5}), "response_delay_ms"),
            (
                json!({"response_delay_ms": 10_000_000}),
                "response_delay_ms",
            ),
            (json!({"drop": 1}), "drop"),
        ] {
            let Err(ApiError::BadRequest { message, .. }) = apply_patch(NONE, &patch) else {
                panic!("{patch} accepted");
            };
            assert!(message.contains(field), "{patch}: {message}");
        }
        assert!(apply_patch(NONE, &json!([1])).is_err());
    }
}
