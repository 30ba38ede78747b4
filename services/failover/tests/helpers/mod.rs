//! A small greenhouse on private brokers (three unless told): a fresh
//! database, the registry (static assignment), one or more failover
//! instances, the bridge, node-sim and, when asked, history-logger, all in
//! this process on port 0. The failover tests and `make bench-failover` use
//! it.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::collections::HashMap;
use std::time::Duration;

use common::settings::Settings;
use sqlx::PgPool;
use testkit::{TestBroker, TestDb, eventually};
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
    pub stop: CancellationToken,
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

fn vars(base: &[(String, String)], more: &[(&str, String)]) -> Option<HashMap<String, String>> {
    let mut all: HashMap<String, String> = base.iter().cloned().collect();
    for (k, v) in more {
        all.insert((*k).to_owned(), v.clone());
    }
    Some(all)
}

impl Cluster {
    pub async fn start(options: Options) -> anyhow::Result<Cluster> {
        common::runtime::logging::init_for_tests();
        let db = TestDb::new().await;
        let mut brokers = Vec::new();
        anyhow::ensure!(
            (1..=BROKER_IDS.len()).contains(&options.brokers),
            "1 to {} brokers",
            BROKER_IDS.len()
        );
        for _ in 0..options.brokers {
            brokers.push(TestBroker::start().await);
        }
        let urls: Vec<String> = brokers.iter().map(TestBroker::url).collect();
        let registry_list = BROKER_IDS
            .iter()
            .zip(&urls)
            .map(|(id, url)| format!("{id}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut base: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("MQTT_HOST".into(), "127.0.0.1".into()),
            ("MQTT_PORT".into(), brokers[0].port.to_string()),
            ("MQTT_USER".into(), testkit::backend_login().user),
            ("MQTT_PASS".into(), testkit::backend_login().pass),
            ("MQTT_BROKER_ID".into(), "mqtt1".into()),
            ("HTTP_PORT".into(), "0".into()),
            ("MQTT_PUBLISH_TIMEOUT_MS".into(), "3000".into()),
            ("ASSIGNMENT_STRATEGY".into(), "static".into()),
            ("PG_MAX_CONNECTIONS".into(), "8".into()),
        ];
        base.extend(options.extra.iter().cloned());
        let stop = CancellationToken::new();

        // The registry first: it registers the brokers every other service follows.
        // No automatic rebalance: nodes stay where failover put them.
        let mut registry_more = vec![
            ("MQTT_BROKERS", registry_list),
            ("REBALANCE_INTERVAL_SEC", "0".to_owned()),
        ];
        let mut failover_more = Vec::new();
        let mut sim_more = Vec::new();
        if options.fast {
            registry_more.extend([
                ("ASSIGN_INTERVAL_MS", "200".to_owned()),
                ("HEALTH_INTERVAL_MS", "1000".to_owned()),
            ]);
            failover_more.extend([
                ("FAILOVER_PROBE_INTERVAL_MS", "500".to_owned()),
                (
                    "FAILOVER_SUSPECT_PROBE_MS",
                    FAST_SUSPECT_PROBE.as_millis().to_string(),
                ),
                ("FAILOVER_RECOVER_PROBES", "4".to_owned()),
            ]);
            sim_more.push(("SIM_FALLBACK_AFTER_MS", "1000".to_owned()));
        }
        let registry_vars = vars(&base, &registry_more);
        let registry = broker_registry::App::build(
            Settings::from_vars(registry_vars.clone())?,
            broker_registry::RegistrySettings::from_vars(registry_vars)?,
        )
        .await?;
        let registry_url = format!("http://127.0.0.1:{}", registry.port());
        tokio::spawn(registry.run_until_stopped(stop.clone()));

        let mut failovers = Vec::new();
        for _ in 0..options.failovers {
            let v = vars(&base, &failover_more);
            let app = failover::App::build(
                Settings::from_vars(v.clone())?,
                failover::FailoverSettings::from_vars(v)?,
            )
            .await?;
            let token = CancellationToken::new();
            failovers.push((app.holder().to_owned(), token.clone()));
            let all = stop.clone();
            tokio::spawn(async move {
                let both = CancellationToken::new();
                let b = both.clone();
                tokio::spawn(async move {
                    tokio::select! { _ = all.cancelled() => {}, _ = token.cancelled() => {} }
                    b.cancel();
                });
                app.run_until_stopped(both).await
            });
        }

        let mut history_keys = Vec::new();
        if options.history {
            let run = format!(
                "failover-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            history_keys = vec![format!("{run}:uplink"), format!("{run}:dead-letter")];
            let v = vars(
                &base,
                &[
                    ("HISTORY_STREAM", history_keys[0].clone()),
                    ("HISTORY_DEAD_LETTER_KEY", history_keys[1].clone()),
                    ("INSTANCE_ID", run.clone()),
                    ("MQTT_SHARE_GROUP", run.clone()),
                    ("PG_MAX_CONNECTIONS", "16".into()),
                ],
            );
            let logger = history_logger::App::build(
                Settings::from_vars(v.clone())?,
                history_logger::HistorySettings::from_vars(v)?,
            )
            .await?;
            tokio::spawn(logger.run_until_stopped(stop.clone()));
        }

        let bridge = mqtt_bridge::App::build(
            Settings::from_vars(vars(&base, &[]))?,
            mqtt_bridge::BridgeSettings::from_vars(vars(&base, &[]))?,
        )
        .await?;
        let bridge_url = format!("http://127.0.0.1:{}", bridge.port());
        tokio::spawn(bridge.run_until_stopped(stop.clone()));

        sim_more.extend([
            ("SIM_SEED_DB", "true".to_owned()),
            ("SIM_ZONES", options.zones.to_string()),
            ("SIM_NODES", options.nodes.to_string()),
            ("SIM_BROKER_URLS", urls.join(",")),
            (
                "SIM_TELEMETRY_INTERVAL_MS",
                options.telemetry_interval_ms.to_string(),
            ),
            ("SIM_HEARTBEAT_INTERVAL_MS", "5000".to_owned()),
        ]);
        let sim_vars = vars(&base, &sim_more);
        let sim_settings = node_sim::SimSettings::from_vars(sim_vars.clone())?;
        if !options.fast {
            // The benchmark's default timings: seed first and give every node
            // its broker account before node-sim starts them (seeding again in
            // its start-up changes nothing). A node refused at first would
            // wait out the default fallback delay and never settle in time.
            node_sim::seed::seed(
                &db.pool,
                &node_sim::layout::layout(&sim_settings),
                &sim_settings.greenhouse,
            )
            .await?;
            for broker in &brokers {
                broker.sync_node_accounts(&db.pool).await;
            }
        }
        let sim = node_sim::App::build(sim_settings, Settings::from_vars(sim_vars)?).await?;
        for broker in &brokers {
            broker.sync_node_accounts(&db.pool).await;
        }
        let sim_nodes = sim.nodes().clone();
        let sim_stop = stop.child_token();
        let sim_task = Some(tokio::spawn(sim.run_until_stopped(sim_stop.clone())));

        Ok(Cluster {
            db,
            brokers,
            stop,
            failovers,
            bridge: bridge_url,
            registry: registry_url,
            sim_nodes,
            sim_stop,
            sim_task,
            history_keys,
            http: reqwest::Client::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub fn url_of(&self, broker: &str) -> String {
        let i = BROKER_IDS
            .iter()
            .position(|b| *b == broker)
            .expect("known broker");
        self.brokers[i].url()
    }

    pub fn broker_mut(&mut self, broker: &str) -> &mut TestBroker {
        let i = BROKER_IDS
            .iter()
            .position(|b| *b == broker)
            .expect("known broker");
        &mut self.brokers[i]
    }

    /// Waits until every node has a confirmed assignment and is connected
    /// to the broker it names.
    pub async fn wait_settled(&self) {
        let settled = eventually(WAIT, || async {
            let rows = self.assignments().await;
            let all_confirmed = rows.len() == self.sim_nodes.len()
                && rows.iter().all(|(_, _, confirmed)| *confirmed);
            let on_theirs = rows.iter().all(|(uid, broker, _)| {
                self.sim_nodes
                    .iter()
                    .find(|n| n.uid() == uid)
                    .is_some_and(|n| {
                        n.is_connected() && n.link().broker_url() == self.url_of(broker)
                    })
            });
            (all_confirmed && on_theirs).then_some(())
        })
        .await;
        assert!(
            settled.is_some(),
            "nodes did not settle: {:?}",
            self.assignments().await
        );
    }

    /// Waits until no assignment names `broker`, every node is confirmed on
    /// another broker and connected there, and the failover event is closed.
    pub async fn wait_failed_over(&self, broker: &str) {
        let done = eventually(WAIT, || async {
            let rows = self.assignments().await;
            let moved = rows.iter().all(|(_, b, confirmed)| b != broker && *confirmed);
            let closed: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM failover_events WHERE broker_id = $1 AND finished_at IS NOT NULL)",
            )
            .bind(broker)
            .fetch_one(self.pool())
            .await
            .ok()?;
            (moved && closed).then_some(())
        })
        .await;
        assert!(
            done.is_some(),
            "failover of {broker} did not finish: {:?}",
            self.assignments().await
        );
    }

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

    /// (node uid, broker, confirmed) for every assignment.
    pub async fn assignments(&self) -> Vec<(String, String, bool)> {
        sqlx::query_as(
            "SELECT n.uid, a.broker_id, a.confirmed_at IS NOT NULL FROM node_broker_assignments a \
             JOIN nodes n ON n.id = a.node_id ORDER BY n.uid",
        )
        .fetch_all(self.pool())
        .await
        .expect("assignments")
    }

    /// The nodes assigned to `broker`.
    pub async fn nodes_on(&self, broker: &str) -> Vec<String> {
        self.assignments()
            .await
            .into_iter()
            .filter(|(_, b, _)| b == broker)
            .map(|(uid, _, _)| uid)
            .collect()
    }

    pub async fn broker_status(&self, broker: &str) -> String {
        sqlx::query_scalar("SELECT status FROM brokers WHERE id = $1")
            .bind(broker)
            .fetch_one(self.pool())
            .await
            .expect("broker row")
    }

    /// Sends a `ping` to the node's first channel through the bridge; the
    /// HTTP status and `command_id`.
    pub async fn command(&self, node: &str) -> (u16, Option<String>) {
        let channel = self.first_channel(node);
        let zone: String = sqlx::query_scalar(
            "SELECT z.uid FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.uid = $1",
        )
        .bind(node)
        .fetch_one(self.pool())
        .await
        .expect("node zone");
        let response = self
            .http
            .post(format!("{}/bridge/zones/{zone}/commands", self.bridge))
            .json(&serde_json::json!({"cmd":"ping","channel":channel,"node_uid":node}))
            .send()
            .await
            .expect("bridge answers");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (
            status,
            body["data"]["command_id"].as_str().map(str::to_owned),
        )
    }

    /// Waits for every command to reach a final status; returns them by status.
    pub async fn final_statuses(&self, ids: &[String]) -> HashMap<String, usize> {
        let finished = eventually(WAIT, || async {
            let statuses: Vec<(String, bool)> = sqlx::query_as(
                "SELECT status, finished_at IS NOT NULL FROM commands WHERE cmd_id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(self.pool())
            .await
            .ok()?;
            (statuses.len() == ids.len() && statuses.iter().all(|(_, f)| *f)).then_some(statuses)
        })
        .await
        .expect("every command finishes");
        let mut counts = HashMap::new();
        for (s, _) in finished {
            *counts.entry(s).or_default() += 1;
        }
        counts
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

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
