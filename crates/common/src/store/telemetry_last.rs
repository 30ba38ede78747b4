//! The `telemetry_last` table: the newest reading per (node, channel,
//! metric), what automation and dashboards read as the current value.
//! history-logger moves it forward with each batch ([`advance`]);
//! automation-engine reads each zone's newest readings.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::telemetry_samples::{Columns, Sample};

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

queries! {
    /// The newest reading of each of `metrics` in each zone of `zone_ids`,
    /// whichever of its nodes gave it; a reading more than `future_secs` ahead
    /// of the database's clock only when the zone has no other, so one node's
    /// clock running ahead cannot hide the others' current readings.
    pub fn newest_by_zone(
        db,
        zone_ids: &[i64],
        metrics: &[String],
        future_secs: f64,
    ) -> Vec<ZoneReading> {
        fetch_all(query_as!(
            ZoneReading,
            r#"SELECT DISTINCT ON (zone_id, metric_type)
                      zone_id AS "zone_id!", metric_type, node_id, value, stable, ts
               FROM telemetry_last WHERE zone_id = ANY($1) AND metric_type = ANY($2)
               ORDER BY zone_id, metric_type, ts > now() + make_interval(secs => $3), ts DESC"#,
            zone_ids, metrics, future_secs
        ))
    }
}

/// Upserts `rows` (one per key) where the stored row is older, or stamped
/// after the database's clock (so one reading from a clock that ran ahead
/// cannot freeze the key). A bulk `UNNEST` statement: a runtime query.
pub async fn advance(conn: &mut PgConnection, rows: &[&Sample]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query_with(
        "INSERT INTO telemetry_last (node_id, zone_id, channel, metric_type, value, raw, stable, ts)
         SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float8[],
                              $6::int8[], $7::bool[], $8::timestamptz[])
         ON CONFLICT (node_id, channel, metric_type) DO UPDATE
            SET zone_id = EXCLUDED.zone_id, value = EXCLUDED.value, raw = EXCLUDED.raw,
                stable = EXCLUDED.stable, ts = EXCLUDED.ts, updated_at = now()
          WHERE telemetry_last.ts < EXCLUDED.ts OR telemetry_last.ts > now()",
        Columns::of(rows).arguments()?,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
