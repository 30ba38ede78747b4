//! A node-sim node in firmware mode, from its first boot to a DONE command,
//! against the real services: history-logger answers its time request,
//! device-registry lists it unbound and binds it (NodeConfig on the temp
//! topic, completed by the `config_report` from its zone), its telemetry is
//! stored under the zone, and a command with a float param, signed with its
//! new secret the way the firmware checks it, ends DONE.

use std::collections::HashMap;
use std::time::Duration;

use common::settings::{FromEnv, Settings};
use serde_json::{Value, json};
use testkit::{TestBroker, TestDb, eventually, redis_url};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "system-token";
const DEFAULT_SECRET: &str = "system-default-secret";

struct Stack {
    db: TestDb,
    _broker: TestBroker,
    stop: CancellationToken,
    registry: String,
    bridge: String,
    http: reqwest::Client,
    /// The simulated firmware node (running).
    node: node_sim::FirmwareNode,
}

fn vars(db: &TestDb, broker: &TestBroker, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let prefix = format!("sys-{}", uuid::Uuid::new_v4().simple());
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis_url()),
        ("MQTT_HOST", "127.0.0.1".into()),
        ("MQTT_PORT", broker.port.to_string()),
        ("MQTT_USER", testkit::backend_login().user),
        ("MQTT_PASS", testkit::backend_login().pass),
        ("MQTT_BROKER_ID", "mqtt1".into()),
        ("HTTP_PORT", "0".into()),
        ("BRIDGE_API_TOKEN", TOKEN.into()),
        ("NODE_DEFAULT_SECRET", DEFAULT_SECRET.into()),
        ("TELEMETRY_FLUSH_MS", "100".into()),
        ("HISTORY_STREAM", format!("{prefix}:uplink")),
        ("HISTORY_DEAD_LETTER_KEY", format!("{prefix}:dead-letter")),
        ("MQTT_SHARE_GROUP", prefix.clone()),
        ("COMMAND_TIMEOUT_SEC", "30".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // device-registry creates node accounts as the broker's dynsec admin;
    // unbound firmware nodes log in as the provision account.
    let (admin, provision) = (broker.admin(), broker.provision());
    vars.extend([
        ("MQTT_ADMIN_USER".to_owned(), admin.user),
        ("MQTT_ADMIN_PASS".to_owned(), admin.pass),
        ("MQTT_PROVISION_USER".to_owned(), provision.user),
        ("MQTT_PROVISION_PASS".to_owned(), provision.pass),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

async fn stack() -> Stack {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    sqlx::query("INSERT INTO brokers (id, url) VALUES ('mqtt1', $1)")
        .bind(broker.url())
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO greenhouses (uid, name) VALUES ('gh-1', 'G1');
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-1', id, 'Z1' FROM greenhouses;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let v = vars(&db, &broker, &[]);
    let settings = || Settings::from_vars(Some(v.clone())).unwrap();

    let logger = history_logger::App::build(
        settings(),
        history_logger::HistorySettings::from_vars(Some(v.clone())).unwrap(),
    )
    .await
    .expect("history-logger starts");
    tokio::spawn(logger.run_until_stopped(stop.clone()));

    let registry = device_registry::App::build(
        settings(),
        device_registry::DeviceSettings::from_vars(Some(v.clone())).unwrap(),
    )
    .await
    .expect("device-registry starts");
    let registry_url = format!("http://127.0.0.1:{}", registry.port());
    tokio::spawn(registry.run_until_stopped(stop.clone()));

    let bridge = mqtt_bridge::App::build(
        settings(),
        mqtt_bridge::BridgeSettings::from_vars(Some(v.clone())).unwrap(),
    )
    .await
    .expect("mqtt-bridge starts");
    let bridge_url = format!("http://127.0.0.1:{}", bridge.port());
    tokio::spawn(bridge.run_until_stopped(stop.clone()));

    let sim_vars = vars(
        &db,
        &broker,
        &[
            ("SIM_MODE", "firmware"),
            ("SIM_NODES", "1"),
            ("SIM_ZONES", "1"),
            ("SIM_TELEMETRY_INTERVAL_MS", "500"),
            ("SIM_HARDWARE_SEED", &uuid::Uuid::new_v4().to_string()),
        ],
    );
    let sim = node_sim::App::build(
        node_sim::SimSettings::from_vars(Some(sim_vars.clone())).unwrap(),
        Settings::from_vars(Some(sim_vars)).unwrap(),
    )
    .await
    .expect("node-sim starts");
    let node = sim.firmware_nodes()[0].clone();
    tokio::spawn(sim.run_until_stopped(stop.clone()));
    Stack {
        db,
        _broker: broker,
        stop,
        registry: registry_url,
        bridge: bridge_url,
        http: reqwest::Client::new(),
        node,
    }
}

impl Stack {
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, url).bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn firmware_node_from_first_boot_to_a_done_command() {
    let s = stack().await;
    let node = s.node.clone();
    let hardware_id = node.hardware_id().to_owned();

    // history-logger answers the time request; the node then says hello.
    eventually(WAIT, || async { node.is_time_synced().then_some(()) })
        .await
        .expect("the node's time request is answered");

    // Listed as unbound, with what its hello said.
    let listed = eventually(WAIT, || async {
        let (code, body) = s
            .call(
                reqwest::Method::GET,
                format!("{}/api/nodes?state=unbound", s.registry),
                None,
            )
            .await;
        assert_eq!(code, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["hardware_id"] == hardware_id.as_str())
            .cloned()
    })
    .await
    .expect("the unbound node is listed");
    assert_eq!(listed["type"], "ph");
    assert_eq!(listed["move_via"], "node_config");

    // Bound by REST: pending until its config_report from zn-1 arrives.
    let (code, body) = s
        .call(
            reqwest::Method::POST,
            format!("{}/api/nodes/{hardware_id}/bind", s.registry),
            Some(json!({"greenhouse_uid": "gh-1", "zone_uid": "zn-1", "node_uid": "nd-fw-1"})),
        )
        .await;
    assert!(code == 202 || code == 200, "bind: {code} {body}");
    let secret: String = eventually(WAIT, || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT n.secret FROM nodes n JOIN zones z ON z.id = n.zone_id \
              WHERE n.uid = 'nd-fw-1' AND z.uid = 'zn-1'",
        )
        .fetch_optional(&s.db.pool)
        .await
        .unwrap()
        .flatten()
    })
    .await
    .expect("bound to zn-1 once the config_report arrived");
    assert!(secret.len() >= 32 && secret != DEFAULT_SECRET);
    let config = node.config().expect("the node applied its NodeConfig");
    assert_eq!(config.node_secret.as_deref(), Some(secret.as_str()));
    let ns = node.namespace();
    assert_eq!(
        (ns.gh.as_str(), ns.zone.as_str(), ns.node.as_str()),
        ("gh-1", "zn-1", "nd-fw-1"),
        "the node moved to its zone's namespace"
    );

    // Its telemetry lands under zn-1, and it is ONLINE.
    eventually(WAIT, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id \
               JOIN zones z ON z.id = s.zone_id WHERE n.uid = 'nd-fw-1' AND z.uid = 'zn-1'",
        )
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
        (n > 0).then_some(())
    })
    .await
    .expect("telemetry stored under zn-1");
    eventually(WAIT, || async {
        let status: String = sqlx::query_scalar("SELECT status FROM nodes WHERE uid = 'nd-fw-1'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
        (status == "ONLINE").then_some(())
    })
    .await
    .expect("the node is ONLINE");

    // A command with an integral float param: signed over `2`, checked by
    // the node with the firmware's algorithm and its new secret.
    let (code, body) = s
        .call(
            reqwest::Method::POST,
            format!("{}/bridge/nodes/nd-fw-1/commands", s.bridge),
            Some(json!({"cmd": "dose", "channel": "pump_acid", "params": {"ml": 2.0}})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let cmd_id = body["data"]["command_id"].as_str().unwrap().to_owned();
    let last = eventually(WAIT, || async {
        let (_, body) = s
            .call(
                reqwest::Method::GET,
                format!("{}/bridge/commands/{cmd_id}", s.bridge),
                None,
            )
            .await;
        let status = body["data"]["status"].as_str().unwrap_or("").to_owned();
        ["DONE", "ERROR", "INVALID", "TIMEOUT", "SEND_FAILED"]
            .contains(&status.as_str())
            .then_some(body)
    })
    .await
    .expect("the command reaches a final status");
    assert_eq!(last["data"]["status"], "DONE", "{last}");
    assert!(node.commands_executed() >= 1);
}
