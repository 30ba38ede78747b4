//! The `node_channels` table: the channels a node reported in its
//! `config_report`, one row each. device-registry brings them in line with
//! each report (it decides what changes; see its `channels::plan_sync`).

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

/// The node's channels, locked until the transaction `db` ends.
pub async fn lock(db: impl PgExecutor<'_>, node_id: i64) -> Result<Vec<ChannelRow>, sqlx::Error> {
    sqlx::query_as!(
        ChannelRow,
        "SELECT channel, type AS kind, metric_type, unit FROM node_channels WHERE node_id = $1 FOR UPDATE",
        node_id
    )
    .fetch_all(db)
    .await
}

/// Deletes the node's channels named in `channels`.
pub async fn remove(
    db: impl PgExecutor<'_>,
    node_id: i64,
    channels: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM node_channels WHERE node_id = $1 AND channel = ANY($2)",
        node_id,
        channels
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Adds the channel to the node, or changes the one of that name.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    node_id: i64,
    row: &ChannelRow,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO node_channels (node_id, channel, type, metric_type, unit) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (node_id, channel) DO UPDATE SET type = EXCLUDED.type, \
            metric_type = EXCLUDED.metric_type, unit = EXCLUDED.unit",
        node_id,
        row.channel,
        row.kind,
        row.metric_type,
        row.unit
    )
    .execute(db)
    .await?;
    Ok(())
}
