//! The readings' [`Ledger`]: what node-sim made and what history-logger
//! stored, taken once node-sim has stopped and the store has drained.

use std::time::Duration;

use super::Cluster;

impl Cluster {
    /// Stops node-sim cleanly (what the nodes buffered is sent first), waits
    /// until history-logger has stored everything (no new row for 3 s, at
    /// most 180 s), and returns the readings' ledger. Its figures come from
    /// the process-wide metrics recorder: exact only when this process runs
    /// one cluster.
    pub async fn stop_nodes_and_drain(&mut self) -> anyhow::Result<Ledger> {
        self.sim_stop.cancel();
        if let Some(task) = self.sim_task.take() {
            task.await??;
        }
        let drain_start = std::time::Instant::now();
        let mut last = -1;
        let mut still_since = std::time::Instant::now();
        let rows = loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry_samples")
                .fetch_one(self.pool())
                .await?;
            if n != last {
                last = n;
                still_since = std::time::Instant::now();
            }
            if still_since.elapsed() > Duration::from_secs(3)
                || drain_start.elapsed() > Duration::from_secs(180)
            {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let text = common::runtime::http::metrics_handle().render();
        let sum = |name: &str| testkit::metric_sum(&text, name) as i64;
        Ok(Ledger {
            generated: sum(node_sim::metrics::TELEMETRY_GENERATED),
            buffer_dropped: sum(node_sim::metrics::TELEMETRY_BUFFER_DROPPED),
            repeated: sum(node_sim::metrics::TELEMETRY_REPEATED_KEYS),
            rows,
            received: sum("uplink_received_total{kind=\"telemetry\"}"),
            inserted: sum(common::metrics::TELEMETRY_INSERTED),
            redelivered: sum(common::metrics::TELEMETRY_REDELIVERED),
            dropped: sum(common::metrics::TELEMETRY_DROPPED),
        })
    }
}

/// What became of the readings the nodes made, from both ends.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    /// Readings made by node-sim (each handed to its link once).
    pub generated: i64,
    /// Of those, dropped from a full node buffer (never sent).
    pub buffer_dropped: i64,
    /// Of those, acknowledged with a key an earlier reading already had
    /// (the store keeps only the first).
    pub repeated: i64,
    /// Rows in `telemetry_samples`.
    pub rows: i64,
    /// Telemetry deliveries history-logger received (replays included).
    pub received: i64,
    /// Rows history-logger inserted.
    pub inserted: i64,
    /// Deliveries of a reading already stored: absorbed by its key.
    pub redelivered: i64,
    /// Uplink messages history-logger refused, any reason.
    pub dropped: i64,
}

impl Ledger {
    /// Readings that should land: made, less those a full buffer dropped
    /// (counted apart), less those repeating a key.
    pub fn expected(&self) -> i64 {
        self.generated - self.buffer_dropped - self.repeated
    }

    pub fn lost(&self) -> i64 {
        (self.expected() - self.rows).max(0)
    }

    /// Rows beyond the readings that should land: a delivery stored twice.
    pub fn duplicated(&self) -> i64 {
        (self.rows - self.expected()).max(0)
    }

    /// Deliveries not accounted for as inserted, absorbed or refused.
    pub fn unaccounted(&self) -> i64 {
        self.received - self.inserted - self.redelivered - self.dropped
    }
}
