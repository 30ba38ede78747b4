//! The `telemetry_last` table: the newest reading per (node, channel,
//! metric), what automation and dashboards read as the current value.
//! history-logger moves it forward with each batch ([`advance`]).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::telemetry_samples::Sample;

/// Upserts `rows` (one per key) where the stored row is older, or stamped
/// after the database's clock (so one reading from a clock that ran ahead
/// cannot freeze the key). A bulk `UNNEST` statement: a runtime query.
pub async fn advance(conn: &mut PgConnection, rows: &[&Sample]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let node: Vec<i64> = rows.iter().map(|s| s.node_id).collect();
    let zone: Vec<Option<i64>> = rows.iter().map(|s| s.zone_id).collect();
    let channel: Vec<&str> = rows.iter().map(|s| s.channel.as_str()).collect();
    let metric: Vec<&str> = rows.iter().map(|s| s.metric_type).collect();
    let value: Vec<f64> = rows.iter().map(|s| s.value).collect();
    let raw: Vec<Option<i64>> = rows.iter().map(|s| s.raw).collect();
    let stable: Vec<Option<bool>> = rows.iter().map(|s| s.stable).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|s| s.at()).collect();
    sqlx::query(
        "INSERT INTO telemetry_last (node_id, channel, metric_type, zone_id, value, raw, stable, ts)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::float8[],
                              $6::int8[], $7::bool[], $8::timestamptz[])
         ON CONFLICT (node_id, channel, metric_type) DO UPDATE
            SET zone_id = EXCLUDED.zone_id, value = EXCLUDED.value, raw = EXCLUDED.raw,
                stable = EXCLUDED.stable, ts = EXCLUDED.ts, updated_at = now()
          WHERE telemetry_last.ts < EXCLUDED.ts OR telemetry_last.ts > now()",
    )
    .bind(&node)
    .bind(&channel)
    .bind(&metric)
    .bind(&zone)
    .bind(&value)
    .bind(&raw)
    .bind(&stable)
    .bind(&ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
