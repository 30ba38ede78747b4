//! `GET /bridge/commands/{cmd_id}`: the command's row and statuses.

use axum::extract::{Path, State};
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use common::store::commands::{self, CommandDetail};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::input::{MAX_CMD_ID_CHARS, check_text};

use super::*;

/// The status history of a command, derived from its lifecycle timestamps.
fn history(row: &CommandDetail) -> Vec<Value> {
    let mut steps = vec![json!({ "status": "QUEUED", "at": row.created_at })];
    if let Some(at) = row.sent_at {
        steps.push(json!({ "status": "SENT", "at": at }));
    }
    if let Some(at) = row.ack_at {
        steps.push(json!({ "status": "ACK", "at": at }));
    }
    if let Some(at) = row.finished_at {
        steps.push(json!({ "status": row.status, "at": at }));
    }
    steps
}

pub(super) async fn get_command(
    State(state): State<CommandsState>,
    Path(cmd_id): Path<String>,
) -> ApiResult {
    check_text("cmd_id", &cmd_id, MAX_CMD_ID_CHARS)?;
    let Some(row) = commands::detail(&state.pool, &cmd_id).await? else {
        return Err(ApiError::not_found(
            "command_not_found",
            format!("no command with cmd_id `{cmd_id}`"),
        ));
    };
    let history = history(&row);
    Ok(ok(json!({
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
    })))
}
