//! A simulated greenhouse behind the bridge (feature `stack`): a fresh
//! database and a private Mosquitto, node-sim (it seeds greenhouse `gh-1`
//! and answers commands) and mqtt-bridge, in this process on port 0. The
//! engines' and the bridge's tests and benchmarks run against it.

use crate::vars::{service_vars, set_vars, settings};
use crate::{COUNT_WAIT, Service, StopOnDrop, TestBroker, TestDb, eventually};
use common::settings::FromEnv;

/// node-sim built with `vars`; panics when it does not build.
pub async fn build_sim(vars: &[(String, String)]) -> node_sim::App {
    let (shared, sim) = settings(vars, node_sim::SimSettings::from_vars);
    node_sim::App::build(sim, shared)
        .await
        .expect("node-sim starts")
}

/// mqtt-bridge built with `vars` and running until `stop`; panics when it
/// does not build.
pub async fn serve_bridge(vars: &[(String, String)], stop: StopOnDrop) -> Service {
    let (shared, bridge) = settings(vars, mqtt_bridge::BridgeSettings::from_vars);
    let bridge = mqtt_bridge::App::build(shared, bridge)
        .await
        .expect("bridge starts");
    Service::start_with(stop, bridge.port(), |stop| bridge.run_until_stopped(stop))
}

/// node-sim and mqtt-bridge on a database and a broker of their own; both
/// stop when this is dropped.
pub struct SimStack {
    pub db: TestDb,
    pub broker: TestBroker,
    /// Stops node-sim and the bridge.
    pub stop: StopOnDrop,
    /// What both were started with (node-sim's had `SIM_SEED_DB`,
    /// `SIM_ZONES` and `SIM_NODES` too).
    pub vars: Vec<(String, String)>,
    pub sim_url: String,
    pub bridge: Service,
    /// Every (node uid, channel) node-sim has.
    pub targets: Vec<(String, String)>,
}

impl SimStack {
    /// node-sim with `zones` zones and `nodes` nodes, every node given its
    /// broker account and logged in, then mqtt-bridge; both read
    /// [`service_vars`] with `more`.
    pub async fn start(zones: usize, nodes: usize, more: &[(&str, &str)]) -> SimStack {
        let db = TestDb::new().await;
        let broker = TestBroker::start().await;
        let stop = StopOnDrop::new();
        let vars = service_vars(&db.url, broker.port, more);
        let mut sim_vars = vars.clone();
        set_vars(
            &mut sim_vars,
            &[
                ("SIM_SEED_DB", "true"),
                ("SIM_ZONES", &zones.to_string()),
                ("SIM_NODES", &nodes.to_string()),
            ],
        );
        let sim = build_sim(&sim_vars).await;
        broker.sync_node_accounts(&db.pool).await;
        let sim_url = format!("http://127.0.0.1:{}", sim.port());
        let targets = sim
            .layout()
            .nodes
            .iter()
            .flat_map(|n| {
                n.channels()
                    .iter()
                    .map(|c| (n.uid.clone(), c.channel.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let sim_nodes = sim.nodes().clone();
        tokio::spawn(sim.run_until_stopped(stop.clone()));
        // Refused until their accounts existed, the nodes retry with a growing
        // backoff: a command sent before one is back would be lost.
        eventually(COUNT_WAIT, || async {
            sim_nodes.iter().all(|n| n.is_connected()).then_some(())
        })
        .await
        .expect("node-sim's nodes log in with their accounts");
        let bridge = serve_bridge(&vars, stop.child()).await;
        SimStack {
            db,
            broker,
            stop,
            vars,
            sim_url,
            bridge,
            targets,
        }
    }
}
