//! The `broker_health_samples` table, read for broker-registry's advisor:
//! each broker's latency and load over a recent window.

use serde::Serialize;
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

/// Each sampled broker's summary over the last `within_secs`.
pub async fn summary(
    db: impl PgExecutor<'_>,
    within_secs: f64,
) -> Result<Vec<HealthSummary>, sqlx::Error> {
    sqlx::query_as!(
        HealthSummary,
        r#"SELECT broker_id, count(*) AS "samples!",
                  count(*) FILTER (WHERE NOT probe_ok) AS "failed_probes!",
                  avg(latency_ms) AS avg_latency_ms, max(latency_ms) AS max_latency_ms,
                  avg(load_index) AS avg_load_index, avg(msgs_per_sec) AS avg_msgs_per_sec
           FROM broker_health_samples
           WHERE sampled_at > now() - make_interval(secs => $1)
           GROUP BY broker_id ORDER BY broker_id"#,
        within_secs
    )
    .fetch_all(db)
    .await
}
