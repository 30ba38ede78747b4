//! The `node_channels` table: the channels (sensors, actuators) of each
//! node, one row per (node, channel).
//!
//! - device-registry brings them in line with each `config_report` (it
//!   decides what changes; see its `channels::plan_sync`); node-sim seeds its
//!   simulated nodes' channels; `placement::node_config` reads them for a
//!   node that never reported its config.
//! - The command path reads them as [`Target`]s: one node channel with its
//!   node's topic parts, secret and route broker (see
//!   [`crate::with_route_broker_sql!`]). The join lives here because its rows
//!   are channels. A node without a zone has no topic, so it is never a
//!   target. Used by [`crate::commands::target`] (mqtt-bridge's API, its
//!   redelivery, automation-engine and scheduler).

use crate::commands::Target;
use sqlx::PgExecutor;

/// One row of `node_channels`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChannelRow {
    pub channel: String,
    /// `sensor` or `actuator`.
    pub kind: String,
    pub metric_type: Option<String>,
    pub unit: Option<String>,
}

queries! {
    /// The node's channels, locked until the transaction `db` ends.
    pub fn lock(db, node_id: i64) -> Vec<ChannelRow> {
        fetch_all(query_as!(
            ChannelRow,
            "SELECT channel, type AS kind, metric_type, unit FROM node_channels \
             WHERE node_id = $1 FOR UPDATE",
            node_id
        ))
    }

    /// Deletes the node's channels named in `channels`.
    pub fn remove(db, node_id: i64, channels: &[String]) {
        execute(query!(
            "DELETE FROM node_channels WHERE node_id = $1 AND channel = ANY($2)",
            node_id, channels
        ))
    }

    /// Adds the channel to the node, or changes the one of that name.
    pub fn upsert(db, node_id: i64, row: &ChannelRow) {
        execute(query!(
            "INSERT INTO node_channels (node_id, channel, type, metric_type, unit) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (node_id, channel) DO UPDATE SET type = EXCLUDED.type, \
                metric_type = EXCLUDED.metric_type, unit = EXCLUDED.unit",
            node_id, row.channel, row.kind, row.metric_type, row.unit
        ))
    }
}

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

queries! {
    /// The target for `channel` of the node `node_uid`, if both exist.
    pub fn find(db, node_uid: &str, channel: &str) -> Option<Target> {
        fetch_optional(crate::with_route_broker_sql!(target_query!(,
            "WHERE n.uid = $1 AND c.channel = $2",
            node_uid, channel
        )))
    }

    /// The targets for `channel` in the zone with uid `zone` (or id
    /// `zone_id`), only node `node_uid`'s if given; by node uid, at most 10
    /// (a request needs exactly one; the rest name the ambiguity).
    pub fn in_zone(db, zone: &str, zone_id: Option<i64>, channel: &str, node_uid: Option<&str>) -> Vec<Target> {
        fetch_all(crate::with_route_broker_sql!(target_query!(,
            "WHERE (z.uid = $1 OR z.id = $2) AND c.channel = $3 AND ($4::text IS NULL OR n.uid = $4) \
             ORDER BY n.uid LIMIT 10",
            zone, zone_id, channel, node_uid
        )))
    }

    /// Every target of `channels` in the zones `zone_ids`, by node id.
    pub fn in_zones(db, zone_ids: &[i64], channels: &[&str]) -> Vec<Target> {
        fetch_all(crate::with_route_broker_sql!(target_query!(,
            "WHERE z.id = ANY($1) AND c.channel = ANY($2) ORDER BY n.id",
            zone_ids, channels as _
        )))
    }
}

queries! {
    /// The channels of node `node_id`, by name.
    pub fn for_node(db, node_id: i64) -> Vec<ChannelRow> {
        fetch_all(query_as!(
            ChannelRow,
            "SELECT channel, type AS kind, metric_type, unit FROM node_channels \
             WHERE node_id = $1 ORDER BY channel",
            node_id
        ))
    }
}

/// Upserts `channels` of the nodes `node_uids` (the uid at the same index):
/// a channel is put back as given, a channel already so is left alone.
/// Returns the rows written.
pub async fn seed(
    db: impl PgExecutor<'_>,
    node_uids: &[String],
    channels: &[ChannelRow],
) -> Result<u64, sqlx::Error> {
    let names: Vec<&str> = channels.iter().map(|c| c.channel.as_str()).collect();
    let kinds: Vec<&str> = channels.iter().map(|c| c.kind.as_str()).collect();
    let metrics: Vec<Option<&str>> = channels.iter().map(|c| c.metric_type.as_deref()).collect();
    let units: Vec<Option<&str>> = channels.iter().map(|c| c.unit.as_deref()).collect();
    let done = sqlx::query!(
        "INSERT INTO node_channels (node_id, channel, type, metric_type, unit)
         SELECT n.id, t.channel, t.type, t.metric_type, t.unit
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS t (node, channel, type, metric_type, unit)
         JOIN nodes n ON n.uid = t.node
         ON CONFLICT (node_id, channel) DO UPDATE
         SET type = EXCLUDED.type, metric_type = EXCLUDED.metric_type, unit = EXCLUDED.unit
         WHERE (node_channels.type, node_channels.metric_type, node_channels.unit)
               IS DISTINCT FROM (EXCLUDED.type, EXCLUDED.metric_type, EXCLUDED.unit)",
        node_uids,
        // Borrowed text, with NULLs in the last two: no checked type.
        &names[..] as _,
        &kinds[..] as _,
        &metrics[..] as _,
        &units[..] as _
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
