//! The `node_channels` table: the channels (sensors, actuators) of each
//! node. Read by `placement::node_config` for a node that never reported its
//! config; node-sim seeds its simulated nodes' channels.

use sqlx::PgExecutor;

/// One row of `node_channels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub channel: String,
    /// `sensor` or `actuator`.
    pub kind: String,
    pub metric_type: Option<String>,
    pub unit: Option<String>,
}

/// The channels of node `node_id`, by name.
pub async fn for_node(
    db: impl PgExecutor<'_>,
    node_id: i64,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    sqlx::query_as!(
        ChannelRow,
        "SELECT channel, type AS kind, metric_type, unit FROM node_channels \
         WHERE node_id = $1 ORDER BY channel",
        node_id
    )
    .fetch_all(db)
    .await
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
