//! `POST /bridge/zones/{zone_id}/commands`, `POST /bridge/nodes/{node_uid}/commands`
//! and `GET /bridge/commands/{cmd_id}` (contract section 5).
//!
//! A request is checked, its target (node and channel) resolved in one query,
//! and handed to the shared send path in `common::commands`. A repeated
//! `cmd_id` with the same body gets the first answer again; with another
//! body, 409.

//!
//! The jobs, one file each: [`request`] (the body checked), [`target`] (the
//! node and channel resolved), [`send`] (the send and its answer, a repeat
//! answered again), [`status`] (`GET` a command).

mod request;
mod send;
mod status;
mod target;

use common::runtime::api_error::ApiResult;
use request::*;
use send::*;
use status::*;
use target::*;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use common::commands::CommandSender;
use sqlx::PgPool;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::input::{MAX_UID_CHARS, check_text};
use crate::target_cache::TargetCache;

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

pub(super) async fn post_zone_command(
    State(state): State<CommandsState>,
    Path(zone): Path<String>,
    body: Bytes,
) -> ApiResult {
    check_text("zone_id", &zone, MAX_UID_CHARS)?;
    let request = parse_body(&body)?;
    let target = resolve_in_zone(&state, &zone, &request).await?;
    send(&state, request, target).await
}

pub(super) async fn post_node_command(
    State(state): State<CommandsState>,
    Path(node_uid): Path<String>,
    body: Bytes,
) -> ApiResult {
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
