//! Every second: the queue's length, the age of its oldest entry and its
//! pressure level, as gauges (and for ingest's full-queue check).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::metrics as m;
use tokio_util::sync::CancellationToken;

use crate::backpressure::Pressure;
use crate::ingest::IngestStats;
use crate::queue::Queue;

/// How often the gauges are refreshed.
const PERIOD: Duration = Duration::from_secs(1);

pub async fn run(queue: Queue, stats: Arc<IngestStats>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok((len, oldest)) = queue.stats().await {
            stats.queue_len.store(len, Ordering::Relaxed);
            metrics::gauge!(m::UPLINK_QUEUE_LENGTH).set(len as f64);
            let age = oldest.map_or(0.0, |ms| {
                (chrono::Utc::now().timestamp_millis() - ms).max(0) as f64 / 1000.0
            });
            metrics::gauge!(m::UPLINK_QUEUE_OLDEST_AGE).set(age);
            metrics::gauge!(m::UPLINK_QUEUE_PRESSURE).set(Pressure::of(len, queue.bound()).gauge());
        }
    }
}
