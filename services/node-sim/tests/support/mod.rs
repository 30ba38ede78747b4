//! Test helpers: a simulator on port 0 against a private broker, and a test
//! MQTT client that records everything under the test's greenhouse;
//! firmware mode's own helpers in [`firmware`].

#![allow(dead_code)]

pub mod firmware;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use common::settings::{DEV_NODE_SECRET, Settings};
use node_sim::{App, SimNode, SimSettings};
use proto::payloads::CommandResponse;
use serde_json::{Map, Value};
use testkit::{TestBroker, eventually};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Generous: the machine running the tests may be slow and busy.
pub const WAIT: Duration = Duration::from_secs(20);

/// One message seen by the test client.
#[derive(Debug, Clone)]
pub struct Seen {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A client recording every message under `filter`.
pub struct Recorder {
    pub conn: MqttConnection,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _stop: DropGuard,
}

/// A test client of the broker at `url` (broker id `id`, client ids
/// `prefix-…`) listening on `filter`, and what it receives; it stops when
/// the guard is dropped.
pub async fn listener(
    url: &str,
    (id, prefix): (&str, &str),
    filter: &str,
) -> (MqttConnection, mpsc::Receiver<Inbound>, DropGuard) {
    let stop = CancellationToken::new();
    let config = testkit::login(MqttConfig::new(id, url, prefix));
    let (conn, inbox) = testkit::client::listen(config, &[filter], WAIT, &stop).await;
    (conn, inbox, stop.drop_guard())
}

impl Recorder {
    /// Its own connection, alive until the recorder is dropped (so it sees
    /// what the simulator does while it stops).
    pub async fn start(url: &str, filter: &str) -> Recorder {
        let (conn, mut rx, stop) = listener(url, ("test", "node-sim-test"), filter).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                sink.lock().unwrap().push(Seen {
                    topic: m.topic,
                    payload: m.payload.to_vec(),
                    retain: m.retain,
                });
            }
        });
        Recorder {
            conn,
            seen,
            _stop: stop,
        }
    }

    /// Messages whose topic ends with `suffix`.
    pub fn with_suffix(&self, suffix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.topic.ends_with(suffix))
            .cloned()
            .collect()
    }

    /// Every command response for `cmd_id`, in arrival order.
    pub fn responses(&self, cmd_id: &str) -> Vec<CommandResponse> {
        self.with_suffix("/command_response")
            .iter()
            .filter_map(|s| CommandResponse::decode(&s.payload).ok())
            .filter(|r| r.cmd_id == cmd_id)
            .collect()
    }

    /// Waits until `cmd_id` has at least `n` responses.
    pub async fn wait_responses(&self, cmd_id: &str, n: usize) -> Vec<CommandResponse> {
        eventually(WAIT, || async {
            let r = self.responses(cmd_id);
            (r.len() >= n).then_some(r)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{cmd_id}: expected {n} responses, got {:?}",
                self.responses(cmd_id)
            )
        })
    }
}

/// A running simulator with its own broker and a recording client.
pub struct TestSim {
    pub broker: TestBroker,
    pub gh: String,
    pub port: u16,
    pub nodes: Arc<[SimNode]>,
    pub recorder: Recorder,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub app: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Shared settings for a test: HTTP on port 0, plus `extra` variables.
pub fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([("HTTP_PORT".into(), "0".into())]);
    // TODO(node-creds): the simulated nodes log in as the test backend
    // account until they have accounts of their own.
    vars.extend(testkit::login_vars());
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::from_vars(Some(vars)).expect("test settings")
}

/// Simulator settings for a test: a unique greenhouse, fast intervals.
pub fn sim_settings(zones: usize, nodes: usize) -> SimSettings {
    SimSettings {
        greenhouse: format!("gh-t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
        zones,
        nodes,
        telemetry_interval_ms: 200,
        heartbeat_interval_ms: 300,
        ..SimSettings::default()
    }
}

impl TestSim {
    /// 3 zones, 5 nodes.
    pub async fn start() -> TestSim {
        Self::start_with(sim_settings(3, 5), settings(&[])).await
    }

    /// [`TestSim::start`], once every node is connected.
    pub async fn connected() -> TestSim {
        let sim = Self::start().await;
        sim.wait_all_connected().await;
        sim
    }

    pub async fn start_with(mut sim: SimSettings, settings: Settings) -> TestSim {
        let broker = TestBroker::start().await;
        sim.broker_url = Some(broker.url());
        let gh = sim.greenhouse.clone();
        let shutdown = CancellationToken::new();
        let recorder = Recorder::start(&broker.url(), &format!("hydro/{gh}/#")).await;
        let app = App::build(sim, settings).await.expect("app builds");
        let port = app.port();
        let nodes = app.nodes().clone();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        TestSim {
            broker,
            gh,
            port,
            nodes,
            recorder,
            http: reqwest::Client::new(),
            shutdown,
            app: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path` on node-sim's API, its JSON body (any type, whatever the
    /// status: `/health` answers 503 with a body).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let r = self.http.get(self.url(path)).send().await;
        r.unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn node(&self, uid: &str) -> &SimNode {
        self.nodes
            .iter()
            .find(|n| n.uid() == uid)
            .unwrap_or_else(|| panic!("no node {uid}"))
    }

    /// `GET /sim/nodes`, the entry of `uid`.
    pub async fn node_view(&self, uid: &str) -> Value {
        let nodes: Vec<Value> = self.get_json("/sim/nodes").await;
        nodes
            .into_iter()
            .find(|n| n["uid"] == uid)
            .unwrap_or_else(|| panic!("{uid} not listed"))
    }

    /// Waits until every node is connected.
    pub async fn wait_all_connected(&self) {
        eventually(WAIT, || async {
            self.nodes.iter().all(|n| n.is_connected()).then_some(())
        })
        .await
        .expect("every node connects");
    }

    /// Publishes a raw payload to a node channel's command topic.
    pub async fn publish_command(&self, node: &str, channel: &str, payload: Vec<u8>) {
        let zone = self.node(node).spec().zone.clone();
        let topic = format!("hydro/{}/{zone}/{node}/{channel}/command", self.gh);
        self.recorder
            .conn
            .publish(&topic, payload, false)
            .await
            .expect("command published");
    }

    /// Signs with the development node secret and publishes; returns the payload.
    pub async fn send(
        &self,
        node: &str,
        channel: &str,
        cmd_id: &str,
        cmd: &str,
        params: Value,
        ts: i64,
    ) -> Vec<u8> {
        let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
        let command = proto::signing::sign(DEV_NODE_SECRET.as_bytes(), cmd_id, cmd, params, ts);
        let payload = serde_json::to_vec(&command).unwrap();
        self.publish_command(node, channel, payload.clone()).await;
        payload
    }

    /// [`TestSim::send`] with a new command id, stamped now; answers the id.
    pub async fn send_now(&self, node: &str, channel: &str, cmd: &str, params: Value) -> String {
        let cmd_id = new_cmd_id();
        self.send(node, channel, &cmd_id, cmd, params, now_secs())
            .await;
        cmd_id
    }

    /// Stops the simulator cleanly and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.app.take() {
            tokio::time::timeout(WAIT, handle)
                .await
                .expect("app stops in time")
                .expect("app task")
                .expect("app stops cleanly");
        }
    }
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn new_cmd_id() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}
