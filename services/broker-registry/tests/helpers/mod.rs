//! `spawn_registry()`: the registry on port 0 against a fresh database and
//! private brokers, with nodes seeded straight into the database (no
//! simulator: assignment is decided from the tables alone).

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::collections::HashMap;
use std::time::Duration;

use broker_registry::{App, RegistrySettings};
use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use common::settings::FromEnv;
use serde_json::Value;
use sqlx::PgPool;
use testkit::{Service, TestBroker, TestDb};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

/// The registry (its base URL, a client, its stop token: [`Service`]), its
/// database and brokers.
pub struct TestRegistry {
    pub service: Service,
    pub db: TestDb,
    pub brokers: Vec<TestBroker>,
}

testkit::wraps!(TestRegistry => service: Service);

/// `roles[i]` is the role of broker `mqtt{i+1}`; `extra` more variables.
pub async fn spawn_registry(roles: &[&str], extra: &[(&str, &str)]) -> TestRegistry {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    let mut brokers = Vec::new();
    for _ in roles {
        brokers.push(TestBroker::start().await);
    }
    let list = brokers
        .iter()
        .zip(roles)
        .enumerate()
        .map(|(i, (b, role))| format!("mqtt{}={}@{role}", i + 1, b.url()))
        .collect::<Vec<_>>()
        .join(",");
    let mut vars = testkit::service_vars(
        &db.url,
        brokers[0].port,
        &[
            ("MQTT_BROKERS", &list),
            ("ASSIGN_INTERVAL_MS", "200"),
            ("HEALTH_INTERVAL_MS", "1000"),
            ("REBALANCE_INTERVAL_SEC", "0"),
        ],
    );
    testkit::set_vars(&mut vars, extra);
    let (settings, registry) = testkit::settings(&vars, RegistrySettings::from_vars);
    let app = App::build(settings, registry)
        .await
        .expect("registry builds");
    TestRegistry {
        service: Service::start(app.port(), |stop| app.run_until_stopped(stop)),
        db,
        brokers,
    }
}

/// [`spawn_registry`] assigning nodes by `strategy`.
pub async fn spawn_assigning(roles: &[&str], strategy: &str) -> TestRegistry {
    spawn_registry(roles, &[("ASSIGNMENT_STRATEGY", strategy)]).await
}

/// A fresh subscriber to the config/updates on the broker at `url`
/// (connected), and what it receives; it stops with `stop`.
pub async fn update_reader(
    url: &str,
    stop: &CancellationToken,
) -> (MqttConnection, mpsc::Receiver<Inbound>) {
    let config = testkit::login(MqttConfig::new("t", url, "reader"));
    testkit::client::listen(config, &["nodes/+/config/update"], WAIT, stop).await
}

/// Greenhouse `gh-r`, zones `zn-normal` and `zn-critical` (priority
/// critical), and `normal` + `critical` nodes `nd-n-{i}` / `nd-c-{i}`
/// that follow config/update (`move_via` = `config_update`, as node-sim's);
/// returns every node's id by uid.
pub async fn seed_nodes(pool: &PgPool, normal: usize, critical: usize) -> HashMap<String, i64> {
    sqlx::raw_sql(
        "INSERT INTO greenhouses (uid, name) VALUES ('gh-r', 'R');
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-normal', id, 'N' FROM greenhouses;
         INSERT INTO zones (uid, greenhouse_id, name, priority) SELECT 'zn-critical', id, 'C', 'critical' FROM greenhouses;",
    )
    .execute(pool)
    .await
    .expect("seed zones");
    for (prefix, zone, n) in [
        ("nd-n", "zn-normal", normal),
        ("nd-c", "zn-critical", critical),
    ] {
        for i in 1..=n {
            sqlx::query(
                "INSERT INTO nodes (uid, zone_id, type, move_via) \
                 SELECT $1, id, 'ph', 'config_update' FROM zones WHERE uid = $2",
            )
            .bind(format!("{prefix}-{i}"))
            .bind(zone)
            .execute(pool)
            .await
            .expect("seed node");
        }
    }
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT uid, id FROM nodes")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// Three primary brokers with `extra`, `nodes` normal nodes seeded and
/// assigned, then every node put on mqtt1 and mqtt2 ([`empty_mqtt3`]).
pub async fn with_mqtt3_empty(nodes: usize, extra: &[(&str, &str)]) -> TestRegistry {
    let r = spawn_registry(&["primary", "primary", "primary"], extra).await;
    seed_nodes(r.pool(), nodes, 0).await;
    r.wait_assigned(nodes).await;
    empty_mqtt3(&r).await;
    r
}

/// Puts every node on mqtt1 and mqtt2 (mqtt3 came back empty), the way a
/// failover leaves them.
pub async fn empty_mqtt3(r: &TestRegistry) {
    sqlx::query(
        "UPDATE node_broker_assignments SET broker_id = CASE WHEN node_id % 2 = 0 THEN 'mqtt1' ELSE 'mqtt2' END, \
                strategy = 'failover', confirmed_at = now()",
    )
    .execute(r.pool())
    .await
    .unwrap();
}

/// How many nodes are assigned to `broker`.
pub async fn nodes_on(r: &TestRegistry, broker: &str) -> i64 {
    testkit::count(
        r.pool(),
        &format!("SELECT count(*) FROM node_broker_assignments WHERE broker_id = '{broker}'"),
    )
    .await
}

impl TestRegistry {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// node uid → broker id, once `n` nodes have an assignment.
    pub async fn wait_assigned(&self, n: usize) -> HashMap<String, String> {
        testkit::eventually(WAIT, || async {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT n.uid, a.broker_id FROM node_broker_assignments a JOIN nodes n ON n.id = a.node_id",
            )
            .fetch_all(self.pool())
            .await
            .ok()?;
            (rows.len() >= n).then(|| rows.into_iter().collect())
        })
        .await
        .unwrap_or_else(|| panic!("{n} nodes were not assigned"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        self.call(method, path, Some(body), None).await
    }

    /// PATCHes broker `id` with `body`.
    pub async fn patch_broker(&self, id: &str, body: &str) -> (u16, Value) {
        let path = format!("/api/brokers/{id}");
        self.send(reqwest::Method::PATCH, &path, body).await
    }
}
