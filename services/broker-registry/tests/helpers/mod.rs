//! `spawn_registry()`: the registry on port 0 against a fresh database and
//! private brokers, with nodes seeded straight into the database (no
//! simulator: assignment is decided from the tables alone).

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::collections::HashMap;
use std::time::Duration;

use broker_registry::{App, RegistrySettings};
use common::settings::{FromEnv, Settings};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{TestBroker, TestDb};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct TestRegistry {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub brokers: Vec<TestBroker>,
    pub stop: CancellationToken,
}

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
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.clone()),
        ("MQTT_HOST", "127.0.0.1".to_owned()),
        ("MQTT_PORT", brokers[0].port.to_string()),
        ("MQTT_USER", testkit::backend_login().user),
        ("MQTT_PASS", testkit::backend_login().pass),
        ("HTTP_PORT", "0".to_owned()),
        ("MQTT_BROKERS", list),
        ("ASSIGN_INTERVAL_MS", "200".to_owned()),
        ("HEALTH_INTERVAL_MS", "1000".to_owned()),
        ("REBALANCE_INTERVAL_SEC", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let app = App::build(
        Settings::from_vars(Some(vars.clone())).expect("settings"),
        RegistrySettings::from_vars(Some(vars)).expect("registry settings"),
    )
    .await
    .expect("registry builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    TestRegistry {
        base,
        http: reqwest::Client::new(),
        db,
        brokers,
        stop,
    }
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
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        self.call(method, path, Some(body), None).await
    }

    /// A request with `token` (None: no Authorization header) and a JSON
    /// `body`; the status and the answer (Null when it is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        self.call_as(method, path, body, token, None).await
    }

    /// [`Self::call`] naming the operator in `X-Operator`.
    pub async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
        operator: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(o) = operator {
            r = r.header("x-operator", o);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
