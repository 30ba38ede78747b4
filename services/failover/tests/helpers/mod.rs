//! A small greenhouse on private brokers (three unless told): a fresh
//! database, the registry (static assignment), one or more failover
//! instances, the bridge, node-sim and, when asked, history-logger, all in
//! this process on port 0. The failover tests and `make bench-failover` use
//! it.
//!
//! This file holds the cluster and its knobs; starting it is in [`start`],
//! what a test reads of it (assignments, statuses, commands through the
//! bridge) in [`checks`], the readings' ledger in [`ledger`].

#![allow(dead_code)] // each test file uses its own part of the helpers

mod checks;
pub mod ledger;
mod start;

use std::time::Duration;

use sqlx::PgPool;
use testkit::{StopOnDrop, TestBroker, TestDb};
use tokio_util::sync::CancellationToken;

/// Generous: the machine running the tests may be slow and busy.
pub const WAIT: Duration = Duration::from_secs(60);
pub const BROKER_IDS: [&str; 3] = ["mqtt1", "mqtt2", "mqtt3"];
/// `FAILOVER_SUSPECT_PROBE_MS` of a fast cluster: the confirm window is
/// `FAILOVER_CONFIRM_PROBES` of these.
pub const FAST_SUSPECT_PROBE: Duration = Duration::from_millis(250);

pub struct Cluster {
    pub db: TestDb,
    pub brokers: Vec<TestBroker>,
    pub stop: StopOnDrop,
    /// One token per failover instance, to stop one alone.
    pub failovers: Vec<(String, CancellationToken)>,
    pub bridge: String,
    pub registry: String,
    pub sim_nodes: std::sync::Arc<[node_sim::SimNode]>,
    /// Stops node-sim alone (cleanly: buffers sent, then OFFLINE).
    pub sim_stop: CancellationToken,
    pub sim_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// history-logger's Redis stream and dead-letter keys, when it runs.
    pub history_keys: Vec<String>,
    pub http: reqwest::Client,
}

/// Knobs of a cluster.
pub struct Options {
    /// How many brokers, named from [`BROKER_IDS`] in order (at most three).
    pub brokers: usize,
    pub nodes: usize,
    pub zones: usize,
    pub failovers: usize,
    pub telemetry_interval_ms: u64,
    /// Extra variables for every service.
    pub extra: Vec<(String, String)>,
    /// Also run history-logger (Redis keys of this cluster's own).
    pub history: bool,
    /// Shorter probe, fallback and assignment periods than the defaults,
    /// so tests finish sooner; the benchmark measures the defaults.
    pub fast: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            brokers: 3,
            nodes: 9,
            zones: 3,
            failovers: 1,
            telemetry_interval_ms: 1_100,
            extra: Vec::new(),
            history: false,
            fast: true,
        }
    }
}

impl Cluster {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub fn url_of(&self, broker: &str) -> String {
        self.brokers[index_of(broker)].url()
    }

    pub fn broker_mut(&mut self, broker: &str) -> &mut TestBroker {
        &mut self.brokers[index_of(broker)]
    }

    /// The first channel of `node`.
    pub fn first_channel(&self, node: &str) -> &'static str {
        let n = self
            .sim_nodes
            .iter()
            .find(|n| n.uid() == node)
            .expect("node");
        n.spec().channels()[0].channel
    }
}

/// Where `broker` is in [`BROKER_IDS`] (and in [`Cluster::brokers`]).
fn index_of(broker: &str) -> usize {
    BROKER_IDS
        .iter()
        .position(|b| *b == broker)
        .expect("known broker")
}
