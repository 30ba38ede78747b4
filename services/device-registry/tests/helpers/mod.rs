//! `spawn_registry()`: device-registry on port 0 against a fresh database
//! and private brokers (registered in `brokers` as mqtt1, mqtt2, …), with a
//! greenhouse `gh-1` and zones `zn-1`, `zn-2`; and [`FakeNode`], a plain MQTT
//! client that acts like the firmware.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::time::Duration;

use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use common::settings::FromEnv;
use device_registry::{App, DeviceSettings};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{Service, TestBroker, TestDb, eventually};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);
pub const TOKEN: &str = "test-device-token";

/// The registry (its base URL, a client, its stop token: [`Service`]), its
/// database and brokers.
pub struct TestRegistry {
    pub service: Service,
    pub db: TestDb,
    pub brokers: Vec<TestBroker>,
    /// The broker with authentication of [`spawn_secured_registry`].
    pub secured: Option<TestBroker>,
}

testkit::wraps!(TestRegistry => service: Service);

/// `brokers` private brokers; `extra` more variables.
pub async fn spawn_registry(brokers: usize, extra: &[(&str, &str)]) -> TestRegistry {
    let mut started = Vec::new();
    for _ in 0..brokers {
        started.push(TestBroker::start().await);
    }
    let urls: Vec<String> = started.iter().map(TestBroker::url).collect();
    let mut registry = spawn_on(&urls, extra).await;
    registry.brokers = started;
    registry
}

/// The registry on one broker with authentication (dynsec), logged in as a
/// backend account, managing node accounts as `hydro-admin`, with the
/// provision login set.
pub async fn spawn_secured_registry(extra: &[(&str, &str)]) -> TestRegistry {
    let broker = TestBroker::start().await;
    let (backend, admin, provision) = (broker.backend(), broker.admin(), broker.provision());
    let mut vars: Vec<(&str, &str)> = vec![
        ("MQTT_USER", &backend.user),
        ("MQTT_PASS", &backend.pass),
        ("MQTT_ADMIN_USER", &admin.user),
        ("MQTT_ADMIN_PASS", &admin.pass),
        ("MQTT_PROVISION_USER", &provision.user),
        ("MQTT_PROVISION_PASS", &provision.pass),
    ];
    vars.extend_from_slice(extra);
    let mut registry = spawn_on(&[broker.url()], &vars).await;
    registry.secured = Some(broker);
    registry
}

async fn spawn_on(urls: &[String], extra: &[(&str, &str)]) -> TestRegistry {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    let brokers: Vec<(String, String)> = (1..)
        .zip(urls)
        .map(|(i, url)| (format!("mqtt{i}"), url.clone()))
        .collect();
    testkit::register_brokers(&db.pool, &brokers).await;
    let port = common::mqtt::parse_broker_url(&urls[0]).expect("url").1;
    testkit::seed_zones(&db.pool, ("gh-1", "G1"), &[("zn-1", "Z1"), ("zn-2", "Z2")]).await;
    let mut vars = testkit::service_vars(
        &db.url,
        port,
        &[
            ("MQTT_BROKER_ID", "mqtt1"),
            ("DEVICE_REGISTRY_API_TOKEN", TOKEN),
            ("DEVICE_UNBOUND_WRITE_MS", "0"),
        ],
    );
    testkit::set_vars(&mut vars, extra);
    let (settings, device) = testkit::settings(&vars, DeviceSettings::from_vars);
    let app = App::build(settings, device).await.expect("registry builds");
    TestRegistry {
        service: Service::start(app.port(), |stop| app.run_until_stopped(stop)),
        db,
        brokers: Vec::new(),
        secured: None,
    }
}

impl TestRegistry {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, Some(TOKEN))
            .await
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), Some(TOKEN))
            .await
    }

    /// The node's JSON once `check` holds for it.
    pub async fn wait_node(&self, key: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(WAIT, || async {
            let (status, body) = self.get(&format!("/api/nodes/{key}")).await;
            (status == 200 && check(&body["data"])).then(|| body["data"].clone())
        })
        .await
        .unwrap_or_else(|| panic!("node {key}: {what}"))
    }

    /// The sum of a metric's series (labels allowed) on /metrics.
    pub async fn metric(&self, name: &str) -> f64 {
        testkit::scrape_metric(&self.base, name).await
    }
}

/// A node's side of MQTT, as the firmware does it.
pub struct FakeNode {
    pub hardware_id: String,
    pub connection: MqttConnection,
    inbox: mpsc::Receiver<Inbound>,
    _stop: tokio_util::sync::DropGuard,
}

impl FakeNode {
    /// Connects to `broker` and listens on its temp config topic.
    pub async fn connect(broker: &TestBroker, hardware_id: &str) -> FakeNode {
        Self::connect_as(&broker.url(), hardware_id, None).await
    }

    /// Connects to `url` with `login` (username, password), client id =
    /// hardware id, and listens on its temp config topic.
    pub async fn connect_as(url: &str, hardware_id: &str, login: Option<(&str, &str)>) -> FakeNode {
        let (tx, inbox) = mpsc::channel(256);
        let stop = CancellationToken::new();
        let mut config = testkit::login(MqttConfig::new("node", url, "fake-node"));
        if let Some((user, pass)) = login {
            config.client_id = hardware_id.to_owned();
            config.username = Some(user.to_owned());
            config.password = Some(pass.to_owned().into());
        }
        let connection =
            MqttConnection::start(config, Some(tx), stop.clone()).expect("node connection");
        connection
            .wait_connected(WAIT)
            .await
            .expect("node connects");
        connection
            .subscribe(
                &format!("hydro/gh-temp/zn-temp/{hardware_id}/config"),
                QoS::AtLeastOnce,
            )
            .expect("subscribe");
        FakeNode {
            hardware_id: hardware_id.to_owned(),
            connection,
            inbox,
            _stop: stop.drop_guard(),
        }
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.connection
            .publish(topic, payload.as_bytes().to_vec(), false)
            .await
            .expect("node publishes");
    }

    pub fn hello(&self, node_type: &str) -> String {
        format!(
            r#"{{"message_type":"node_hello","hardware_id":"{}","node_type":"{node_type}","fw_version":"2.0.1","capabilities":["ph","temperature"],"provisioning_meta":{{"node_name":null}}}}"#,
            self.hardware_id
        )
    }

    /// Says hello (again and again, as a rebooting node would, until the
    /// registry's subscription is up) until the registry lists the node;
    /// returns its JSON.
    pub async fn register(&self, registry: &TestRegistry, node_type: &str) -> Value {
        let hello = self.hello(node_type);
        eventually(WAIT, || async {
            self.publish("hydro/node_hello", &hello).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (status, body) = registry
                .get(&format!("/api/nodes/{}", self.hardware_id))
                .await;
            (status == 200).then(|| body["data"].clone())
        })
        .await
        .expect("the registry lists the node after its hello")
    }

    /// The next message on `topic`, parsed as JSON.
    pub async fn next_on(&mut self, topic: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("nothing arrived on {topic}"))
                .expect("inbox open");
            if m.topic == topic {
                return serde_json::from_slice(&m.payload).expect("JSON payload");
            }
        }
    }

    /// Returns once the registry has handled everything this node published
    /// before: the registry reads one broker's messages in order, so when a
    /// marker node (temp heartbeat from `marker`) is listed, what came
    /// before it has been handled.
    pub async fn barrier(&self, registry: &TestRegistry, marker: &str) {
        self.publish(
            &format!("hydro/gh-temp/zn-temp/{marker}/heartbeat"),
            r#"{"uptime":1,"free_heap":1}"#,
        )
        .await;
        registry
            .wait_node(marker, "marker registered", |_| true)
            .await;
    }

    /// Whether anything arrived within `wait`.
    pub async fn anything_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.inbox.recv()).await.is_ok()
    }
}
