//! The `telemetry_last` table: the newest reading per (node, channel,
//! metric), what automation and dashboards read as the current value.
//! history-logger moves it forward with each batch ([`advance`]).

use sqlx::PgConnection;

use super::telemetry_samples::{Columns, Sample};

/// Upserts `rows` (one per key) where the stored row is older, or stamped
/// after the database's clock (so one reading from a clock that ran ahead
/// cannot freeze the key). A bulk `UNNEST` statement: a runtime query.
pub async fn advance(conn: &mut PgConnection, rows: &[&Sample]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let c = Columns::of(rows);
    sqlx::query(
        "INSERT INTO telemetry_last (node_id, channel, metric_type, zone_id, value, raw, stable, ts)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::float8[],
                              $6::int8[], $7::bool[], $8::timestamptz[])
         ON CONFLICT (node_id, channel, metric_type) DO UPDATE
            SET zone_id = EXCLUDED.zone_id, value = EXCLUDED.value, raw = EXCLUDED.raw,
                stable = EXCLUDED.stable, ts = EXCLUDED.ts, updated_at = now()
          WHERE telemetry_last.ts < EXCLUDED.ts OR telemetry_last.ts > now()",
    )
    .bind(&c.node)
    .bind(&c.channel)
    .bind(&c.metric)
    .bind(&c.zone)
    .bind(&c.value)
    .bind(&c.raw)
    .bind(&c.stable)
    .bind(&c.ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
