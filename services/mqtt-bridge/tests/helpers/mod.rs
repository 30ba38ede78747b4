//! `spawn_app()`: a bridge on port 0 against a fresh database and a private
//! Mosquitto, with a small greenhouse seeded and a test MQTT client that
//! plays the nodes.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::collections::HashMap;
use std::time::Duration;

use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use common::settings::{FromEnv, Settings};
use mqtt_bridge::{App, BridgeSettings};
use proto::payloads::{Command, CommandResponse, ResponseStatus};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{TestBroker, TestDb};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token";
pub const SECRET: &str = "test-secret";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub broker: TestBroker,
    pub stop: CancellationToken,
    /// Plays the nodes: sees every command, can publish responses.
    pub nodes: MqttConnection,
    pub commands: mpsc::Receiver<Inbound>,
}

/// Seeds greenhouse `gh-t`: zone `zn-a` with `nd-ph-1` and `nd-ph-2` (both
/// with `pump_acid`; only `nd-ph-1` has `ph_sensor`), zone `zn-b` with
/// `nd-ec-1` (`pump_nutrients`), and `nd-loose` without a zone.
pub async fn seed(pool: &PgPool) {
    sqlx::raw_sql(
        "INSERT INTO greenhouses (uid, name) VALUES ('gh-t', 'Test');
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-a', id, 'A' FROM greenhouses;
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-b', id, 'B' FROM greenhouses;
         INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-ph-1', id, 'ph' FROM zones WHERE uid = 'zn-a';
         INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-ph-2', id, 'ph' FROM zones WHERE uid = 'zn-a';
         INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-ec-1', id, 'ec' FROM zones WHERE uid = 'zn-b';
         INSERT INTO nodes (uid, type) VALUES ('nd-loose', 'ph');
         INSERT INTO node_channels (node_id, channel, type) SELECT id, 'pump_acid', 'actuator' FROM nodes WHERE uid IN ('nd-ph-1', 'nd-ph-2', 'nd-loose');
         INSERT INTO node_channels (node_id, channel, type, metric_type) SELECT id, 'ph_sensor', 'sensor', 'PH' FROM nodes WHERE uid = 'nd-ph-1';
         INSERT INTO node_channels (node_id, channel, type) SELECT id, 'pump_nutrients', 'actuator' FROM nodes WHERE uid = 'nd-ec-1';",
    )
    .execute(pool)
    .await
    .expect("seed");
}

/// The shared and the bridge's own settings for a test bridge.
pub fn settings_for(
    db: &TestDb,
    broker_port: u16,
    extra: &[(&str, &str)],
) -> (Settings, BridgeSettings) {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.as_str()),
        ("MQTT_HOST", "127.0.0.1"),
        ("HTTP_PORT", "0"),
        ("BRIDGE_API_TOKEN", TOKEN),
        ("NODE_DEFAULT_SECRET", SECRET),
        ("MQTT_PUBLISH_TIMEOUT_MS", "3000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.insert("MQTT_PORT".into(), broker_port.to_string());
    vars.extend(testkit::login_vars());
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    (
        Settings::from_vars(Some(vars.clone())).expect("test settings are valid"),
        BridgeSettings::from_vars(Some(vars)).expect("test settings are valid"),
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let broker = TestBroker::start().await;
    let (settings, bridge) = settings_for(&db, broker.port, extra);
    let app = App::build(settings, bridge).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    let bridge_mqtt = app.brokers().default_broker().clone();
    tokio::spawn(app.run_until_stopped(stop.clone()));

    let (tx, commands) = mpsc::channel(10_000);
    let nodes = MqttConnection::start(
        testkit::login(MqttConfig::new("mqtt1", &broker.url(), "test-nodes")),
        Some(tx),
        stop.clone(),
    )
    .expect("node client");
    nodes
        .subscribe("hydro/+/+/+/+/command", QoS::AtLeastOnce)
        .unwrap();
    nodes
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("node client connects");
    bridge_mqtt
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("bridge connects");
    // The subscriptions are made right after CONNACK; a round trip through
    // the broker (subscribe and publish are handled in order) settles them.
    nodes
        .publish("hydro-probe/settle", "x", false)
        .await
        .unwrap();
    bridge_mqtt
        .publish("hydro-probe/settle", "x", false)
        .await
        .unwrap();

    TestApp {
        base,
        http: reqwest::Client::new(),
        db,
        broker,
        stop,
        nodes,
        commands,
    }
}

impl TestApp {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with_token(path, body, Some(TOKEN)).await
    }

    pub async fn post_with_token(
        &self,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The next command a node receives, with its topic.
    pub async fn next_command(&mut self) -> (String, Command) {
        let m = tokio::time::timeout(Duration::from_secs(10), self.commands.recv())
            .await
            .expect("a command arrives within 10 s")
            .expect("inbox open");
        let c = Command::decode(&m.payload).expect("command payload follows the contract");
        (m.topic, c)
    }

    /// Whether any command arrives within `wait`.
    pub async fn no_command_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.commands.recv())
            .await
            .is_err()
    }

    /// Publishes a node's response to `command_topic`'s response topic.
    pub async fn respond(
        &self,
        command_topic: &str,
        cmd_id: &str,
        status: ResponseStatus,
        error_code: Option<&str>,
    ) {
        let topic = command_topic.replace("/command", "/command_response");
        let response = CommandResponse {
            cmd_id: cmd_id.to_owned(),
            status,
            ts: chrono::Utc::now().timestamp_millis(),
            details: None,
            error_code: error_code.map(Into::into),
            error_message: None,
            message: None,
        };
        self.nodes
            .publish(&topic, serde_json::to_vec(&response).unwrap(), false)
            .await
            .expect("response published");
    }

    pub async fn status_of(&self, cmd_id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM commands WHERE cmd_id = $1")
            .bind(cmd_id)
            .fetch_one(&self.db.pool)
            .await
            .expect("command row exists")
    }

    /// Waits until the command's status is `want` (or returns the last seen).
    pub async fn wait_status(&self, cmd_id: &str, want: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status_of(cmd_id).await;
            if s == want || tokio::time::Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A bridge and node-sim (which seeds its own greenhouse `gh-1` with `zones`
/// zones and `nodes` nodes) on a private broker; the outage test and
/// `make bench-commands` both run on it.
pub struct WithSim {
    pub url: String,
    pub db: TestDb,
    pub broker: TestBroker,
    pub stop: CancellationToken,
    /// Every (node uid, channel) node-sim has.
    pub targets: Vec<(String, String)>,
}

pub async fn spawn_with_sim(
    extra: &[(&str, &str)],
    zones: usize,
    nodes: usize,
) -> anyhow::Result<WithSim> {
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let mut base: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.clone()),
        ("MQTT_HOST", "127.0.0.1".to_owned()),
        ("MQTT_PORT", broker.port.to_string()),
        ("MQTT_USER", testkit::backend_login().user),
        ("MQTT_PASS", testkit::backend_login().pass),
        ("HTTP_PORT", "0".to_owned()),
        ("NODE_DEFAULT_SECRET", SECRET.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .collect();
    let stop = CancellationToken::new();
    let bridge_vars = testkit::env_vars(&base);
    base.extend([
        ("SIM_SEED_DB".to_owned(), "true".to_owned()),
        ("SIM_ZONES".to_owned(), zones.to_string()),
        ("SIM_NODES".to_owned(), nodes.to_string()),
    ]);
    let sim_vars = testkit::env_vars(&base);
    let sim = node_sim::App::build(
        node_sim::SimSettings::from_vars(sim_vars.clone())?,
        Settings::from_vars(sim_vars)?,
    )
    .await?;
    broker.sync_node_accounts(&db.pool).await;
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
    testkit::eventually(testkit::COUNT_WAIT, || async {
        sim_nodes.iter().all(|n| n.is_connected()).then_some(())
    })
    .await
    .expect("node-sim's nodes log in with their accounts");
    let bridge = App::build(
        Settings::from_vars(bridge_vars.clone())?,
        BridgeSettings::from_vars(bridge_vars)?,
    )
    .await?;
    let url = format!("http://127.0.0.1:{}", bridge.port());
    tokio::spawn(bridge.run_until_stopped(stop.clone()));
    Ok(WithSim {
        url,
        db,
        broker,
        stop,
        targets,
    })
}
