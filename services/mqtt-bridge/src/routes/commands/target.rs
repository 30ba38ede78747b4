//! The node and channel a request names, resolved in one query; a miss
//! explained (unknown zone, node, channel, or a node of another zone).

use std::sync::Arc;

use common::commands::{Target, find_in_zone, find_target};
use common::store::{nodes, zones};
use sqlx::PgPool;

use crate::error::ApiError;
use crate::target_cache::Scope;

use super::*;

pub(super) async fn resolve_in_zone(
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
    let targets = find_in_zone(pool, zone, &request.channel, request.node_uid.as_deref()).await?;
    if targets.is_empty() {
        return Err(explain_missing_in_zone(pool, zone, request).await?);
    }
    let targets: Arc<[Target]> = Arc::from(targets);
    state.targets.put(scope, &request.channel, targets.clone());
    pick_one(zone, request, &targets)
}

/// The one target of a zone request, or why there is not exactly one.
pub(super) fn pick_one(
    zone: &str,
    request: &CommandRequest,
    targets: &[Target],
) -> Result<Target, ApiError> {
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
pub(super) async fn explain_missing_in_zone(
    pool: &PgPool,
    zone: &str,
    request: &CommandRequest,
) -> Result<ApiError, ApiError> {
    let Some(found_zone) = zones::find_id(pool, zone, zone.parse::<i64>().ok()).await? else {
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
    Ok(if nodes::is_in_zone(pool, node, found_zone).await? {
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

pub(super) async fn resolve_node(
    state: &CommandsState,
    node_uid: &str,
    channel: &str,
) -> Result<Target, ApiError> {
    let scope = Scope::Node(node_uid.to_owned());
    if let Some(targets) = state.targets.get(&scope, channel) {
        return Ok(targets[0].clone());
    }
    let pool = &state.pool;
    if let Some(t) = find_target(pool, node_uid, channel).await? {
        state
            .targets
            .put(scope, channel, Arc::from(vec![t.clone()]));
        return Ok(t);
    }
    Err(match nodes::zone_of(pool, node_uid).await? {
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
