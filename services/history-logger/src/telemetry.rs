//! Telemetry rows: `telemetry_samples` in one multi-row `UNNEST` insert whose
//! conflicts are no-ops (a redelivery writes nothing), and `telemetry_last`
//! upserted once per key per batch, never back in time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// One reading, resolved to ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub node_id: i64,
    pub zone_id: Option<i64>,
    pub channel: String,
    pub metric_type: &'static str,
    pub value: f64,
    pub raw: Option<i64>,
    pub stable: Option<bool>,
    /// Seconds since the epoch.
    pub ts: i64,
}

impl Sample {
    fn key(&self) -> (i64, &str, &'static str) {
        (self.node_id, self.channel.as_str(), self.metric_type)
    }
}

/// The newest sample per (node, channel, metric) of a batch, sorted by key
/// (so concurrent writers lock rows in the same order). Of two samples with
/// the same `ts`, the later in the batch wins.
pub fn latest_per_key(samples: &[Sample]) -> Vec<&Sample> {
    let mut newest: HashMap<(i64, &str, &str), &Sample> = HashMap::new();
    for s in samples {
        newest
            .entry(s.key())
            .and_modify(|kept| {
                if s.ts >= kept.ts {
                    *kept = s;
                }
            })
            .or_insert(s);
    }
    let mut rows: Vec<&Sample> = newest.into_values().collect();
    rows.sort_by(|a, b| a.key().cmp(&b.key()));
    rows
}

fn timestamp(ts: i64) -> DateTime<Utc> {
    // Decoding refused a `ts` outside chrono's range.
    DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

/// Inserts the samples (duplicates are no-ops) and moves `telemetry_last`
/// forward; returns the rows inserted.
pub async fn write(conn: &mut PgConnection, samples: &[Sample]) -> Result<u64, sqlx::Error> {
    if samples.is_empty() {
        return Ok(0);
    }
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.key().cmp(&b.key()).then(a.ts.cmp(&b.ts)));
    let inserted = insert_samples(conn, &sorted).await?;
    upsert_last(conn, &latest_per_key(samples)).await?;
    Ok(inserted)
}

async fn insert_samples(conn: &mut PgConnection, rows: &[&Sample]) -> Result<u64, sqlx::Error> {
    let node: Vec<i64> = rows.iter().map(|s| s.node_id).collect();
    let zone: Vec<Option<i64>> = rows.iter().map(|s| s.zone_id).collect();
    let channel: Vec<&str> = rows.iter().map(|s| s.channel.as_str()).collect();
    let metric: Vec<&str> = rows.iter().map(|s| s.metric_type).collect();
    let value: Vec<f64> = rows.iter().map(|s| s.value).collect();
    let raw: Vec<Option<i64>> = rows.iter().map(|s| s.raw).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|s| timestamp(s.ts)).collect();
    let done = sqlx::query(
        "INSERT INTO telemetry_samples (node_id, zone_id, channel, metric_type, value, raw, ts)
         SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float8[],
                              $6::int8[], $7::timestamptz[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&node)
    .bind(&zone)
    .bind(&channel)
    .bind(&metric)
    .bind(&value)
    .bind(&raw)
    .bind(&ts)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

async fn upsert_last(conn: &mut PgConnection, rows: &[&Sample]) -> Result<(), sqlx::Error> {
    let node: Vec<i64> = rows.iter().map(|s| s.node_id).collect();
    let zone: Vec<Option<i64>> = rows.iter().map(|s| s.zone_id).collect();
    let channel: Vec<&str> = rows.iter().map(|s| s.channel.as_str()).collect();
    let metric: Vec<&str> = rows.iter().map(|s| s.metric_type).collect();
    let value: Vec<f64> = rows.iter().map(|s| s.value).collect();
    let raw: Vec<Option<i64>> = rows.iter().map(|s| s.raw).collect();
    let stable: Vec<Option<bool>> = rows.iter().map(|s| s.stable).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|s| timestamp(s.ts)).collect();
    sqlx::query(
        "INSERT INTO telemetry_last (node_id, channel, metric_type, zone_id, value, raw, stable, ts)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::float8[],
                              $6::int8[], $7::bool[], $8::timestamptz[])
         ON CONFLICT (node_id, channel, metric_type) DO UPDATE
            SET zone_id = EXCLUDED.zone_id, value = EXCLUDED.value, raw = EXCLUDED.raw,
                stable = EXCLUDED.stable, ts = EXCLUDED.ts, updated_at = now()
          WHERE telemetry_last.ts < EXCLUDED.ts",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(node: i64, channel: &str, metric: &'static str, ts: i64, value: f64) -> Sample {
        Sample {
            node_id: node,
            zone_id: Some(1),
            channel: channel.into(),
            metric_type: metric,
            value,
            raw: None,
            stable: None,
            ts,
        }
    }

    #[test]
    fn newest_per_key_sorted() {
        let batch = vec![
            s(2, "ph", "PH", 10, 1.0),
            s(1, "ec", "EC", 30, 2.0),
            s(2, "ph", "PH", 20, 3.0),
            s(2, "ph", "PH", 15, 4.0),
            s(1, "ec", "EC", 30, 5.0),
            s(1, "ec", "TEMPERATURE", 5, 6.0),
        ];
        let last = latest_per_key(&batch);
        let got: Vec<(i64, &str, &str, i64, f64)> = last
            .iter()
            .map(|s| (s.node_id, s.channel.as_str(), s.metric_type, s.ts, s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "ec", "EC", 30, 5.0),
                (1, "ec", "TEMPERATURE", 5, 6.0),
                (2, "ph", "PH", 20, 3.0),
            ]
        );
        assert!(latest_per_key(&[]).is_empty());
    }
}
