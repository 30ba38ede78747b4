//! `spawn_app()`: a bridge on port 0 against a fresh database and a private
//! Mosquitto, with a small greenhouse seeded and a test MQTT client that
//! plays the nodes.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::time::Duration;

use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use common::settings::{FromEnv, Settings};
use mqtt_bridge::{App, BridgeSettings};
use proto::payloads::{Command, CommandResponse, ResponseStatus};
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::{Service, SimStack, TestBroker, TestDb};
use tokio::sync::mpsc;

pub const TOKEN: &str = "test-token";
pub const SECRET: &str = "test-secret";

/// The bridge (its base URL, a client, its stop token: [`Service`]), its
/// database and broker, and a client that plays the nodes.
pub struct TestApp {
    pub service: Service,
    pub db: TestDb,
    pub broker: TestBroker,
    /// Plays the nodes: sees every command, can publish responses.
    pub nodes: MqttConnection,
    pub commands: mpsc::Receiver<Inbound>,
}

/// Seeds greenhouse `gh-t`: zone `zn-a` with `nd-ph-1` and `nd-ph-2` (both
/// with `pump_acid`; only `nd-ph-1` has `ph_sensor`), zone `zn-b` with
/// `nd-ec-1` (`pump_nutrients`), and `nd-loose` without a zone.
pub async fn seed(pool: &PgPool) {
    testkit::seed_zones(pool, ("gh-t", "Test"), &[("zn-a", "A"), ("zn-b", "B")]).await;
    sqlx::raw_sql(
        "INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-ph-1', id, 'ph' FROM zones WHERE uid = 'zn-a';
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
    let mut vars = testkit::service_vars(
        &db.url,
        broker_port,
        &[
            ("BRIDGE_API_TOKEN", TOKEN),
            ("NODE_DEFAULT_SECRET", SECRET),
            ("MQTT_PUBLISH_TIMEOUT_MS", "3000"),
        ],
    );
    testkit::set_vars(&mut vars, extra);
    testkit::settings(&vars, BridgeSettings::from_vars)
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
    let bridge_mqtt = app.brokers().default_broker().clone();
    let service = Service::start(app.port(), |stop| app.run_until_stopped(stop));

    let (nodes, commands) = testkit::client::listen(
        testkit::login(MqttConfig::new("mqtt1", &broker.url(), "test-nodes")),
        &["hydro/+/+/+/+/command"],
        Duration::from_secs(10),
        &service.stop,
    )
    .await;
    bridge_mqtt
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("bridge connects");
    for client in [&nodes, &bridge_mqtt] {
        testkit::client::settle(client).await;
    }

    TestApp {
        service,
        db,
        broker,
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
        self.post_raw(path, body.to_string(), token).await
    }

    /// POSTs a raw body (it may hold what `json!` would not build) to `path`.
    pub async fn post_raw(&self, path: &str, body: String, token: Option<&str>) -> (u16, Value) {
        let request = self.service.request(reqwest::Method::POST, path);
        testkit::http::call(request, token, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with_token(path, Some(TOKEN)).await
    }

    pub async fn get_with_token(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.service
            .call(reqwest::Method::GET, path, None, token)
            .await
    }

    /// POSTs `body` to `path`; answers the new command's id and the topic
    /// it reached the node on.
    pub async fn send(&mut self, path: &str, body: Value) -> (String, String) {
        let (_, answer) = self.post(path, body).await;
        let cmd_id = answer["data"]["command_id"].as_str().unwrap().to_owned();
        let (topic, _) = self.next_command().await;
        (cmd_id, topic)
    }

    /// POSTs a `run_pump` of `nd-ph-1`'s `pump_acid` in zone `zn-a` for
    /// `duration_ms`.
    pub async fn run_acid_pump(&self, duration_ms: u64) -> (u16, Value) {
        self.post(
            "/bridge/zones/zn-a/commands",
            json!({"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1","params":{"duration_ms":duration_ms}}),
        )
        .await
    }

    /// POSTs a `stop` of zone `zn-b`'s `pump_nutrients` with `cmd_id`.
    pub async fn stop_nutrients(&self, cmd_id: &str) -> (u16, Value) {
        self.post(
            "/bridge/zones/zn-b/commands",
            json!({"cmd":"stop","channel":"pump_nutrients","cmd_id":cmd_id}),
        )
        .await
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
        self.respond_on(&topic, cmd_id, status, error_code).await;
    }

    /// Publishes a node's response on `topic`, wherever the command went.
    pub async fn respond_on(
        &self,
        topic: &str,
        cmd_id: &str,
        status: ResponseStatus,
        error_code: Option<&str>,
    ) {
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
            .publish(topic, serde_json::to_vec(&response).unwrap(), false)
            .await
            .expect("response published");
    }

    /// How many command rows there are.
    pub async fn commands_stored(&self) -> i64 {
        testkit::count(&self.db.pool, "SELECT count(*) FROM commands").await
    }

    pub async fn status_of(&self, cmd_id: &str) -> String {
        let sql = "SELECT status FROM commands WHERE cmd_id = $1";
        testkit::scalar_for(&self.db.pool, sql, cmd_id).await
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

/// The statuses of a command's `history`, oldest first.
pub fn history(command: &Value) -> Vec<&str> {
    command["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect()
}

testkit::wraps!(TestApp => service: Service);

/// A bridge and node-sim (which seeds its own greenhouse `gh-1` with `zones`
/// zones and `nodes` nodes) on a private broker, `extra` for both; the
/// outage test and `make bench-commands` both run on it.
pub async fn spawn_with_sim(extra: &[(&str, &str)], zones: usize, nodes: usize) -> SimStack {
    let more = [&[("NODE_DEFAULT_SECRET", SECRET)], extra].concat();
    SimStack::start(zones, nodes, &more).await
}
