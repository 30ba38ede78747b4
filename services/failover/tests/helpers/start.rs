//! Starting a [`Cluster`]: the database, the brokers, the registry, the
//! failover instances, the bridge, node-sim and (when asked)
//! history-logger, each on port 0 in this process.

use common::settings::FromEnv;
use testkit::{StopOnDrop, TestBroker, TestDb, service_vars, set_vars, settings};

use super::{BROKER_IDS, Cluster, FAST_SUSPECT_PROBE, Options};

/// `base` with `more` set.
fn vars(base: &[(String, String)], more: &[(&str, String)]) -> Vec<(String, String)> {
    let mut all = base.to_vec();
    let more: Vec<(&str, &str)> = more.iter().map(|(k, v)| (*k, v.as_str())).collect();
    set_vars(&mut all, &more);
    all
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
        let mut base = service_vars(
            &db.url,
            brokers[0].port,
            &[
                ("MQTT_BROKER_ID", "mqtt1"),
                ("MQTT_PUBLISH_TIMEOUT_MS", "3000"),
                ("ASSIGNMENT_STRATEGY", "static"),
                ("PG_MAX_CONNECTIONS", "8"),
            ],
        );
        base.extend(options.extra.iter().cloned());
        let stop = StopOnDrop::new();

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
        let (shared, own) = settings(
            &vars(&base, &registry_more),
            broker_registry::RegistrySettings::from_vars,
        );
        let registry = broker_registry::App::build(shared, own).await?;
        let registry_url = format!("http://127.0.0.1:{}", registry.port());
        tokio::spawn(registry.run_until_stopped(stop.clone()));

        let mut failovers = Vec::new();
        for _ in 0..options.failovers {
            let (shared, own) = settings(
                &vars(&base, &failover_more),
                failover::FailoverSettings::from_vars,
            );
            let app = failover::App::build(shared, own).await?;
            // Stopped with the cluster, or alone (a killed instance).
            let token = stop.child_token();
            failovers.push((app.holder().to_owned(), token.clone()));
            tokio::spawn(app.run_until_stopped(token));
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
            let (shared, own) = settings(&v, history_logger::HistorySettings::from_vars);
            let logger = history_logger::App::build(shared, own).await?;
            tokio::spawn(logger.run_until_stopped(stop.clone()));
        }

        let (shared, own) = settings(&base, mqtt_bridge::BridgeSettings::from_vars);
        let bridge = mqtt_bridge::App::build(shared, own).await?;
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
        let (sim_shared, sim_settings) =
            settings(&vars(&base, &sim_more), node_sim::SimSettings::from_vars);
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
        let sim = node_sim::App::build(sim_settings, sim_shared).await?;
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
}
