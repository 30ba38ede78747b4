//! The send, run to its end whatever the client does, and its answer; a
//! repeated `cmd_id` answered again (or 409 for another body).

use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use std::time::Duration;

use axum::Json;
use common::commands::status::CommandStatus;
use common::commands::{NewCommand, SendOutcome, Source, Target, new_cmd_id};
use common::store::commands;
use serde_json::{Value, json};

use crate::error::ApiError;

use super::*;

pub(super) fn sent_answer(cmd_id: &str, node_uid: &str, broker_id: &str) -> Json<Value> {
    ok(
        json!({ "command_id": cmd_id, "status": "SENT", "node_uid": node_uid, "broker_id": broker_id }),
    )
}

pub(super) fn send_failed(message: &str) -> ApiError {
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
pub(super) async fn send(
    state: &CommandsState,
    request: CommandRequest,
    target: Target,
) -> ApiResult {
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
pub(super) async fn replay(state: &CommandsState, cmd_id: &str, hash: &str) -> ApiResult {
    let deadline = tokio::time::Instant::now() + state.replay_wait;
    loop {
        let Some(row) = commands::replay_state(&state.pool, cmd_id).await? else {
            return Err(ApiError::internal(format!(
                "command `{cmd_id}` vanished while answering a repeat"
            )));
        };
        if row.request_hash.as_deref() != Some(hash) {
            return Err(ApiError::Conflict {
                code: "cmd_id_conflict",
                message: format!(
                    "cmd_id `{cmd_id}` was already used for a different command; choose a new cmd_id"
                ),
            });
        }
        match row.status {
            CommandStatus::Queued if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            CommandStatus::Queued | CommandStatus::SendFailed => {
                return Err(send_failed(
                    row.error_message
                        .as_deref()
                        .unwrap_or("the first request is still publishing"),
                ));
            }
            _ => {
                return Ok(sent_answer(
                    cmd_id,
                    row.node_uid.as_deref().unwrap_or_default(),
                    &row.broker_id.unwrap_or_default(),
                ));
            }
        }
    }
}
