//! The `telemetry_last` table: the newest value of each node, channel and
//! metric. automation-engine reads each zone's newest readings here.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// The newest reading of one metric in one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneReading {
    pub zone_id: i64,
    pub metric_type: String,
    /// The node that gave it.
    pub node_id: i64,
    pub value: f64,
    pub stable: Option<bool>,
    pub ts: DateTime<Utc>,
}

/// The newest reading of each of `metrics` in each zone of `zone_ids`,
/// whichever of its nodes gave it; a reading more than `future_secs` ahead
/// of the database's clock only when the zone has no other, so one node's
/// clock running ahead cannot hide the others' current readings.
pub async fn newest_by_zone(
    db: impl PgExecutor<'_>,
    zone_ids: &[i64],
    metrics: &[String],
    future_secs: f64,
) -> Result<Vec<ZoneReading>, sqlx::Error> {
    sqlx::query_as!(
        ZoneReading,
        r#"SELECT DISTINCT ON (zone_id, metric_type)
                  zone_id AS "zone_id!", metric_type, node_id, value, stable, ts
           FROM telemetry_last WHERE zone_id = ANY($1) AND metric_type = ANY($2)
           ORDER BY zone_id, metric_type, ts > now() + make_interval(secs => $3), ts DESC"#,
        zone_ids,
        metrics,
        future_secs
    )
    .fetch_all(db)
    .await
}
