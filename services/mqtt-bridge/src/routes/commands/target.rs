//! The node and channel a request names, resolved in one query; a miss
//! explained (unknown zone, node, channel, or a node of another zone).

use std::sync::Arc;

use common::commands::{TARGET_QUERY, Target};
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
