//! `GET /bridge/commands/{cmd_id}`: the command's row and statuses.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::input::{MAX_CMD_ID_CHARS, check_text};

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct CommandRow {
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

pub(super) async fn get_command(
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
