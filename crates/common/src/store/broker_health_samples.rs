//! The `broker_health_samples` table: broker-registry's health monitor
//! writes a sample per broker per interval (health.rs, [`insert`]). Read here for the
//! advisor (each broker's latency and load over a recent window, summed up)
//! and for the dashboard's `GET /api/brokers/history` (recent samples
//! averaged into a bounded number of points, so a chart of an hour costs the
//! same whatever the sampling interval), and for `GET /api/brokers/{id}`
//! (a broker's latest samples as stored).

use crate::placement::broker_status::BrokerStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;

/// A broker's samples over a window, summed up.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HealthSummary {
    pub broker_id: String,
    pub samples: i64,
    pub failed_probes: i64,
    pub avg_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub avg_load_index: Option<f64>,
    pub avg_msgs_per_sec: Option<f64>,
}

queries! {
    /// Each sampled broker's summary over the last `within_secs`.
    pub fn summary(db, within_secs: f64) -> Vec<HealthSummary> {
        fetch_all(query_as!(
            HealthSummary,
            r#"SELECT broker_id, count(*) AS "samples!",
                      count(*) FILTER (WHERE NOT probe_ok) AS "failed_probes!",
                      avg(latency_ms) AS avg_latency_ms, max(latency_ms) AS max_latency_ms,
                      avg(load_index) AS avg_load_index, avg(msgs_per_sec) AS avg_msgs_per_sec
               FROM broker_health_samples
               WHERE sampled_at > now() - make_interval(secs => $1)
               GROUP BY broker_id ORDER BY broker_id"#,
            within_secs
        ))
    }
}

/// One point of a broker's chart: the samples of one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HealthPoint {
    pub broker_id: String,
    /// The start of the bucket.
    pub at: DateTime<Utc>,
    pub load_index: Option<f64>,
    pub msgs_per_sec: Option<f64>,
    pub latency_ms: Option<f64>,
    pub connections: Option<i32>,
    /// Every probe of the bucket answered.
    pub probe_ok: bool,
}

/// The samples of the last `window`, per broker, in at most `points` buckets
/// per broker (averages; the most connections), oldest first. One index
/// range scan per broker (`broker_health_samples_idx`).
pub async fn history(
    db: impl PgExecutor<'_>,
    window: std::time::Duration,
    points: u32,
) -> Result<Vec<HealthPoint>, sqlx::Error> {
    let seconds = window.as_secs_f64().max(1.0);
    let bucket = seconds / f64::from(points.max(1));
    sqlx::query_as!(
        HealthPoint,
        r#"SELECT b.id AS "broker_id!", s.at AS "at!", s.load_index, s.msgs_per_sec, s.latency_ms,
                  s.connections, s.probe_ok AS "probe_ok!"
           FROM brokers b CROSS JOIN LATERAL (
               SELECT to_timestamp(floor(extract(epoch FROM h.sampled_at)::float8 / $2) * $2) AS at,
                      avg(h.load_index) AS load_index, avg(h.msgs_per_sec) AS msgs_per_sec,
                      avg(h.latency_ms) AS latency_ms, max(h.connections) AS connections,
                      bool_and(h.probe_ok) AS probe_ok
               FROM broker_health_samples h
               WHERE h.broker_id = b.id AND h.sampled_at >= now() - make_interval(secs => $1)
               GROUP BY 1) s
           ORDER BY b.id, s.at"#,
        seconds,
        bucket
    )
    .fetch_all(db)
    .await
}

/// One sample of a broker, as the health monitor writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSample<'a> {
    pub broker_id: &'a str,
    pub probe_ok: bool,
    pub latency_ms: Option<f64>,
    pub connections: Option<i32>,
    pub msgs_per_sec: f64,
    pub retained: Option<i32>,
    pub uptime_sec: Option<i64>,
    /// Drops of the monitor's own connection since the last sample.
    pub disconnects: i32,
    pub load_index: f64,
    /// What this sample alone says of the broker.
    pub status: BrokerStatus,
}

queries! {
    /// Writes `sample`.
    pub fn insert(db, sample: &NewSample<'_>) {
        execute(query!(
            "INSERT INTO broker_health_samples (broker_id, probe_ok, latency_ms, connections, \
                 msgs_per_sec, retained, uptime_sec, disconnects, load_index, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            sample.broker_id, sample.probe_ok, sample.latency_ms, sample.connections,
            sample.msgs_per_sec, sample.retained, sample.uptime_sec, sample.disconnects,
            sample.load_index, sample.status.as_str()
        ))
    }

    /// Broker `broker_id`'s latest `limit` samples, newest first, each as a JSON
    /// object of every column but `id` (the API shows them as they are stored).
    pub fn latest_json(db, broker_id: &str, limit: i64) -> Vec<Value> {
        fetch_all(query_scalar!(
            r#"SELECT to_jsonb(s) - 'id' AS "sample!" FROM (SELECT * FROM broker_health_samples
               WHERE broker_id = $1 ORDER BY sampled_at DESC LIMIT $2) s"#,
            broker_id, limit
        ))
    }
}
