//! The `node_channels` table, as the command path reads it: a command
//! [`Target`] is one node channel, with its node's topic parts, secret and
//! route broker (see [`crate::with_route_broker_sql!`]). The join lives here
//! because its rows are channels: one per (node, channel). A node without a
//! zone has no topic, so it is never a target. Used by
//! [`crate::commands::target`] (mqtt-bridge's API, its redelivery,
//! automation-engine and scheduler).

use sqlx::PgExecutor;

use crate::commands::Target;

/// A `query_as!` of [`Target`] rows: the route expression (handed in by
/// [`crate::with_route_broker_sql!`]), then the `WHERE …` literal and its
/// arguments.
macro_rules! target_query {
    ($route:tt, $where:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Target,
            "SELECT n.id AS node_id, n.uid AS node_uid, z.id AS zone_id, z.uid AS zone_uid, \
                    g.uid AS greenhouse_uid, c.channel, n.secret, " + $route + " AS broker_id \
             FROM nodes n \
             JOIN zones z ON z.id = n.zone_id \
             JOIN greenhouses g ON g.id = z.greenhouse_id \
             JOIN node_channels c ON c.node_id = n.id \
             LEFT JOIN node_broker_assignments a ON a.node_id = n.id " + $where
            $(, $arg)*
        )
    };
}

/// The target for `channel` of the node `node_uid`, if both exist.
pub async fn find(
    db: impl PgExecutor<'_>,
    node_uid: &str,
    channel: &str,
) -> Result<Option<Target>, sqlx::Error> {
    crate::with_route_broker_sql!(target_query!(,
        "WHERE n.uid = $1 AND c.channel = $2",
        node_uid,
        channel
    ))
    .fetch_optional(db)
    .await
}

/// The targets for `channel` in the zone with uid `zone` (or id
/// `zone_id`), only node `node_uid`'s if given; by node uid, at most 10 (a
/// request needs exactly one; the rest name the ambiguity).
pub async fn in_zone(
    db: impl PgExecutor<'_>,
    zone: &str,
    zone_id: Option<i64>,
    channel: &str,
    node_uid: Option<&str>,
) -> Result<Vec<Target>, sqlx::Error> {
    crate::with_route_broker_sql!(target_query!(,
        "WHERE (z.uid = $1 OR z.id = $2) AND c.channel = $3 AND ($4::text IS NULL OR n.uid = $4) \
         ORDER BY n.uid LIMIT 10",
        zone,
        zone_id,
        channel,
        node_uid
    ))
    .fetch_all(db)
    .await
}

/// Every target of `channels` in the zones `zone_ids`, by node id.
pub async fn in_zones(
    db: impl PgExecutor<'_>,
    zone_ids: &[i64],
    channels: &[&str],
) -> Result<Vec<Target>, sqlx::Error> {
    crate::with_route_broker_sql!(target_query!(,
        "WHERE z.id = ANY($1) AND c.channel = ANY($2) ORDER BY n.id",
        zone_ids,
        channels as _
    ))
    .fetch_all(db)
    .await
}
