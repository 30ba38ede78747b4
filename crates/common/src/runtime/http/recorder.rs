//! `GET /metrics`: the Prometheus recorder, its buckets and upkeep.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metrics as m;

/// How often recorded histogram samples are folded into their buckets.
pub(super) const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The sum of every series of `name` in a Prometheus text (benchmarks, and
/// node-sim's totals at stop, read their in-process counters this way).
/// `name` may carry labels: `uplink_received_total{kind="telemetry"}`.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// Histogram samples wait in a buffer until they are folded into their
/// buckets, which a scrape does, or the upkeep this starts: without it a
/// process nobody scrapes would keep every sample it ever recorded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A full-name matcher is tried before any suffix one.
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), m::LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .set_buckets_for_metric(Matcher::Full(m::TELEMETRY_LAG.into()), m::LAG_BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP);
                        upkeep.run_upkeep();
                    }
                })
                .expect("a thread can be started");
            handle
        })
        .clone()
}

pub(super) async fn metrics_text() -> String {
    metrics_handle().render()
}
