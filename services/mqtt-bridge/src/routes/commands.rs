//! `POST /bridge/zones/{zone_id}/commands`, `POST /bridge/nodes/{node_uid}/commands`
//! and `GET /bridge/commands/{cmd_id}` (contract section 5).
//!
//! A request is checked, its target (node and channel) resolved in one query,
//! and handed to the shared send path in `common::commands`. A repeated
//! `cmd_id` with the same body gets the first answer again; with another
//! body, 409.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::commands::{
    CommandSender, NewCommand, SendOutcome, Source, TARGET_QUERY, Target, new_cmd_id,
};
use proto::payloads::{validate_cmd_id, validate_cmd_name};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::input::{MAX_CMD_CHARS, MAX_CMD_ID_CHARS, MAX_UID_CHARS, check_json, check_text};
use crate::target_cache::{Scope, TargetCache};

/// What the command routes need.
#[derive(Clone)]
pub struct CommandsState {
    pub pool: PgPool,
    pub sender: CommandSender,
    /// How long a repeated request waits for the first one to finish publishing.
    pub replay_wait: Duration,
    pub targets: Arc<TargetCache>,
    /// The sends in flight, awaited at shutdown (see [`send`]).
    pub tasks: TaskTracker,
}

pub fn router(state: CommandsState) -> Router {
    Router::new()
        .route("/bridge/zones/{zone_id}/commands", post(post_zone_command))
        .route("/bridge/nodes/{node_uid}/commands", post(post_node_command))
        .route("/bridge/commands/{cmd_id}", get(get_command))
        .with_state(state)
}

/// The request body. Unknown fields are refused so a typo is not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    cmd: String,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    node_uid: Option<String>,
    channel: String,
    #[serde(default)]
    cmd_id: Option<String>,
}

/// A checked request.
struct CommandRequest {
    cmd: String,
    params: Map<String, Value>,
    node_uid: Option<String>,
    channel: String,
    cmd_id: Option<String>,
}

fn parse_body(bytes: &[u8]) -> Result<CommandRequest, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    let Value::Object(object) = &value else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    if object.contains_key("type") {
        return Err(ApiError::bad_request(
            "legacy_field_type",
            "the field `type` is no longer accepted: name the command in `cmd` instead",
        ));
    }
    let body: CommandBody = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    // What PostgreSQL could not store is a 400 naming the field, first.
    check_text("cmd", &body.cmd, MAX_CMD_CHARS)?;
    check_text("channel", &body.channel, MAX_UID_CHARS)?;
    if let Some(node_uid) = &body.node_uid {
        check_text("node_uid", node_uid, MAX_UID_CHARS)?;
    }
    if let Some(cmd_id) = &body.cmd_id {
        check_text("cmd_id", cmd_id, MAX_CMD_ID_CHARS)?;
    }
    if let Some(params) = &body.params {
        check_json("params", params)?;
    }
    validate_cmd_name(&body.cmd)
        .map_err(|e| ApiError::unprocessable("invalid_cmd", e.to_string()))?;
    if let Some(id) = &body.cmd_id {
        validate_cmd_id(id)
            .map_err(|e| ApiError::unprocessable("invalid_cmd_id", e.to_string()))?;
    }
    if body.channel.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_channel",
            "`channel` must not be empty",
        ));
    }
    let params = match body.params {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_params",
                "`params` must be a JSON object",
            ));
        }
    };
    Ok(CommandRequest {
        cmd: body.cmd,
        params,
        node_uid: body.node_uid,
        channel: body.channel,
        cmd_id: body.cmd_id,
    })
}

/// Fingerprint of what a request asks for, to recognise a retry.
fn request_hash(request: &CommandRequest, target: &Target) -> String {
    let canonical = json!({
        "cmd": request.cmd,
        "params": request.params,
        "node_id": target.node_id,
        "channel": target.channel,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

async fn post_zone_command(
    State(state): State<CommandsState>,
    Path(zone): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_text("zone_id", &zone, MAX_UID_CHARS)?;
    let request = parse_body(&body)?;
    let target = resolve_in_zone(&state, &zone, &request).await?;
    send(&state, request, target).await
}

async fn post_node_command(
    State(state): State<CommandsState>,
    Path(node_uid): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_text("node_uid", &node_uid, MAX_UID_CHARS)?;
    let mut request = parse_body(&body)?;
    match &request.node_uid {
        Some(n) if *n != node_uid => {
            return Err(ApiError::unprocessable(
                "node_uid_mismatch",
                format!(
                    "body `node_uid` `{n}` differs from the path's `{node_uid}`; leave it out or make them equal"
                ),
            ));
        }
        _ => request.node_uid = Some(node_uid.clone()),
    }
    let target = resolve_node(&state, &node_uid, &request.channel).await?;
    send(&state, request, target).await
}

async fn resolve_in_zone(
    state: &CommandsState,
    zone: &str,
    request: &CommandRequest,
) -> Result<Target, ApiError> {
    let scope = Scope::Zone {
        zone: zone.to_owned(),
        node_uid: request.node_uid.clone(),
    };
    if let Some(targets) = state.targets.get(&scope, &request.channel) {
        return pick_one(zone, request, &targets);
    }
    let pool = &state.pool;
    let zone_id = zone.parse::<i64>().ok();
    let targets: Vec<Target> = sqlx::query_as(&format!(
        "{TARGET_QUERY} WHERE (z.uid = $1 OR z.id = $2) AND c.channel = $3 AND ($4::text IS NULL OR n.uid = $4) \
         ORDER BY n.uid LIMIT 10"
    ))
    .bind(zone)
    .bind(zone_id)
    .bind(&request.channel)
    .bind(&request.node_uid)
    .fetch_all(pool)
    .await?;
    if targets.is_empty() {
        return Err(explain_missing_in_zone(pool, zone, zone_id, request).await?);
    }
    let targets: Arc<[Target]> = Arc::from(targets);
    state.targets.put(scope, &request.channel, targets.clone());
    pick_one(zone, request, &targets)
}

/// The one target of a zone request, or why there is not exactly one.
fn pick_one(zone: &str, request: &CommandRequest, targets: &[Target]) -> Result<Target, ApiError> {
    match targets {
        [one] => Ok(one.clone()),
        _ => {
            let nodes: Vec<&str> = targets.iter().map(|t| t.node_uid.as_str()).collect();
            Err(ApiError::unprocessable(
                "ambiguous_channel",
                format!(
                    "several nodes of zone `{zone}` have channel `{}` ({}); name one in `node_uid`",
                    request.channel,
                    nodes.join(", ")
                ),
            ))
        }
    }
}

/// Says which of zone, node or channel does not exist (only on the error path).
async fn explain_missing_in_zone(
    pool: &PgPool,
    zone: &str,
    zone_id: Option<i64>,
    request: &CommandRequest,
) -> Result<ApiError, ApiError> {
    let Some(found_zone): Option<i64> =
        sqlx::query_scalar("SELECT id FROM zones WHERE uid = $1 OR id = $2")
            .bind(zone)
            .bind(zone_id)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(ApiError::not_found(
            "zone_not_found",
            format!("zone `{zone}` does not exist"),
        ));
    };
    let channel = &request.channel;
    let Some(node) = &request.node_uid else {
        return Ok(ApiError::not_found(
            "channel_not_found",
            format!("no node of zone `{zone}` has channel `{channel}`"),
        ));
    };
    let in_zone: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM nodes WHERE uid = $1 AND zone_id = $2)")
            .bind(node)
            .bind(found_zone)
            .fetch_one(pool)
            .await?;
    Ok(if in_zone {
        ApiError::not_found(
            "channel_not_found",
            format!("node `{node}` has no channel `{channel}`"),
        )
    } else {
        ApiError::not_found(
            "node_not_found",
            format!("node `{node}` is not in zone `{zone}`"),
        )
    })
}

async fn resolve_node(
    state: &CommandsState,
    node_uid: &str,
    channel: &str,
) -> Result<Target, ApiError> {
    let scope = Scope::Node(node_uid.to_owned());
    if let Some(targets) = state.targets.get(&scope, channel) {
        return Ok(targets[0].clone());
    }
    let pool = &state.pool;
    if let Some(t) = common::commands::find_target(pool, node_uid, channel).await? {
        state
            .targets
            .put(scope, channel, Arc::from(vec![t.clone()]));
        return Ok(t);
    }
    let zone: Option<Option<i64>> = sqlx::query_scalar("SELECT zone_id FROM nodes WHERE uid = $1")
        .bind(node_uid)
        .fetch_optional(pool)
        .await?;
    Err(match zone {
        None => ApiError::not_found(
            "node_not_found",
            format!("node `{node_uid}` does not exist"),
        ),
        Some(None) => ApiError::unprocessable(
            "node_unassigned",
            format!(
                "node `{node_uid}` is not placed in a zone yet; assign it before sending commands"
            ),
        ),
        Some(Some(_)) => ApiError::not_found(
            "channel_not_found",
            format!("node `{node_uid}` has no channel `{channel}`"),
        ),
    })
}

fn sent_answer(cmd_id: &str, node_uid: &str, broker_id: &str) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "data": { "command_id": cmd_id, "status": "SENT", "node_uid": node_uid, "broker_id": broker_id },
    }))
}

fn send_failed(message: &str) -> ApiError {
    ApiError::Unavailable {
        code: "broker_unavailable",
        message: format!(
            "no broker accepted the command ({message}); it is recorded as SEND_FAILED — send it again with a new cmd_id"
        ),
    }
}

/// Hands the command to the send path in a task of its own, tracked for
/// shutdown, and waits for it: once its row is written, the publish and the
/// SENT or SEND_FAILED mark complete even if this request is dropped (the
/// client hung up or timed out), so no delivered command stays QUEUED.
async fn send(
    state: &CommandsState,
    request: CommandRequest,
    target: Target,
) -> Result<Json<Value>, ApiError> {
    let hash = request_hash(&request, &target);
    let cmd_id = request.cmd_id.clone().unwrap_or_else(new_cmd_id);
    let command = NewCommand {
        cmd_id: cmd_id.clone(),
        cmd: request.cmd,
        params: request.params,
        source: Source::Api,
        request_hash: Some(hash.clone()),
    };
    let node_uid = target.node_uid.clone();
    let sender = state.sender.clone();
    let outcome = state
        .tasks
        .spawn(async move { sender.send(&target, command).await })
        .await
        .map_err(|e| ApiError::Internal(format!("send task failed: {e}")))?;
    match outcome.map_err(ApiError::from)? {
        SendOutcome::Sent { broker_id } => Ok(sent_answer(&cmd_id, &node_uid, &broker_id)),
        SendOutcome::Failed { broker_id, error } => {
            Err(send_failed(&format!("broker {broker_id}: {error}")))
        }
        SendOutcome::Duplicate => replay(state, &cmd_id, &hash).await,
    }
}

/// The answer to a repeated `cmd_id`: the first answer if the body is the
/// same (waiting for the first request to finish publishing), else 409.
async fn replay(state: &CommandsState, cmd_id: &str, hash: &str) -> Result<Json<Value>, ApiError> {
    let deadline = tokio::time::Instant::now() + state.replay_wait;
    loop {
        let row: (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = sqlx::query_as(
            "SELECT c.status, c.request_hash, c.broker_id, c.error_message, n.uid \
             FROM commands c LEFT JOIN nodes n ON n.id = c.node_id WHERE c.cmd_id = $1",
        )
        .bind(cmd_id)
        .fetch_one(&state.pool)
        .await?;
        let (status, stored_hash, broker_id, error_message, node_uid) = row;
        if stored_hash.as_deref() != Some(hash) {
            return Err(ApiError::Conflict {
                code: "cmd_id_conflict",
                message: format!(
                    "cmd_id `{cmd_id}` was already used for a different command; choose a new cmd_id"
                ),
            });
        }
        match status.as_str() {
            "QUEUED" if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            "QUEUED" | "SEND_FAILED" => {
                return Err(send_failed(
                    error_message
                        .as_deref()
                        .unwrap_or("the first request is still publishing"),
                ));
            }
            _ => {
                return Ok(sent_answer(
                    cmd_id,
                    node_uid.as_deref().unwrap_or_default(),
                    &broker_id.unwrap_or_default(),
                ));
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct CommandRow {
    cmd_id: String,
    zone_id: Option<i64>,
    zone_uid: Option<String>,
    node_id: Option<i64>,
    node_uid: Option<String>,
    channel: String,
    cmd: String,
    params: Value,
    status: String,
    source: String,
    broker_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    result: Option<Value>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    ack_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl CommandRow {
    /// The status history, derived from the lifecycle timestamps.
    fn history(&self) -> Vec<Value> {
        let mut steps = vec![json!({ "status": "QUEUED", "at": self.created_at })];
        if let Some(at) = self.sent_at {
            steps.push(json!({ "status": "SENT", "at": at }));
        }
        if let Some(at) = self.ack_at {
            steps.push(json!({ "status": "ACK", "at": at }));
        }
        if let Some(at) = self.finished_at {
            steps.push(json!({ "status": self.status, "at": at }));
        }
        steps
    }
}

async fn get_command(
    State(state): State<CommandsState>,
    Path(cmd_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_text("cmd_id", &cmd_id, MAX_CMD_ID_CHARS)?;
    let row: Option<CommandRow> = sqlx::query_as(
        "SELECT c.cmd_id, c.zone_id, z.uid AS zone_uid, c.node_id, n.uid AS node_uid, c.channel, c.cmd, c.params, \
                c.status, c.source, c.broker_id, c.error_code, c.error_message, c.result, \
                c.created_at, c.sent_at, c.ack_at, c.finished_at \
         FROM commands c LEFT JOIN zones z ON z.id = c.zone_id LEFT JOIN nodes n ON n.id = c.node_id \
         WHERE c.cmd_id = $1",
    )
    .bind(&cmd_id)
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::not_found(
            "command_not_found",
            format!("no command with cmd_id `{cmd_id}`"),
        ));
    };
    let history = row.history();
    Ok(Json(json!({
        "status": "ok",
        "data": {
            "command_id": row.cmd_id,
            "zone_id": row.zone_id,
            "zone_uid": row.zone_uid,
            "node_id": row.node_id,
            "node_uid": row.node_uid,
            "channel": row.channel,
            "cmd": row.cmd,
            "params": row.params,
            "status": row.status,
            "source": row.source,
            "broker_id": row.broker_id,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "result": row.result,
            "created_at": row.created_at,
            "sent_at": row.sent_at,
            "ack_at": row.ack_at,
            "finished_at": row.finished_at,
            "history": history,
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_code(bytes: &[u8]) -> (&'static str, String) {
        match parse_body(bytes) {
            Err(ApiError::BadRequest { code, message })
            | Err(ApiError::Unprocessable { code, message }) => (code, message),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("accepted {}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn body_checks_name_the_problem() {
        assert_eq!(err_code(b"{").0, "invalid_json");
        assert_eq!(err_code(b"[1]").0, "invalid_body");
        let (code, message) = err_code(br#"{"type":"run_pump","channel":"c"}"#);
        assert_eq!(code, "legacy_field_type");
        assert!(message.contains("`type`"));
        let (code, message) = err_code(br#"{"channel":"c"}"#);
        assert_eq!(code, "invalid_body");
        assert!(message.contains("cmd"), "{message}");
        assert!(
            err_code(br#"{"cmd":"x","channel":"c","colour":1}"#)
                .1
                .contains("colour")
        );
        assert_eq!(err_code(br#"{"cmd":"","channel":"c"}"#).0, "invalid_cmd");
        assert_eq!(
            err_code(br#"{"cmd":"x","channel":"c","cmd_id":"a b"}"#).0,
            "invalid_cmd_id"
        );
        assert_eq!(
            err_code(br#"{"cmd":"x","channel":"c","params":[1]}"#).0,
            "invalid_params"
        );
        assert_eq!(
            err_code(br#"{"cmd":"x","channel":" "}"#).0,
            "invalid_channel"
        );
    }

    #[test]
    fn minimal_body_is_accepted() {
        let r = parse_body(br#"{"cmd":"run_pump","channel":"pump_acid"}"#).unwrap();
        assert!(r.params.is_empty());
        assert!(r.node_uid.is_none() && r.cmd_id.is_none());
    }
}
