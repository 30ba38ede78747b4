//! A node-sim node in firmware mode, from its first boot to a DONE command,
//! against the real services: history-logger answers its time request,
//! device-registry lists it unbound and binds it (NodeConfig on the temp
//! topic, completed by the `config_report` from its zone), its telemetry is
//! stored under the zone, and a command with a float param, signed with its
//! new secret the way the firmware checks it, ends DONE.

use std::time::Duration;

use common::settings::FromEnv;
use serde_json::json;
use testkit::{Service, StopOnDrop, TestBroker, TestDb, count_comes_to, eventually, redis_url};

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "system-token";
const DEFAULT_SECRET: &str = "system-default-secret";

struct Stack {
    db: TestDb,
    _broker: TestBroker,
    /// Stops history-logger and node-sim when the stack is dropped.
    _stop: StopOnDrop,
    registry: Service,
    bridge: Service,
    /// The simulated firmware node (running).
    node: node_sim::FirmwareNode,
}

fn vars(db: &TestDb, broker: &TestBroker, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let prefix = format!("sys-{}", uuid::Uuid::new_v4().simple());
    // device-registry creates node accounts as the broker's dynsec admin;
    // unbound firmware nodes log in as the provision account.
    let (admin, provision) = (broker.admin(), broker.provision());
    let mut vars = testkit::service_vars(
        &db.url,
        broker.port,
        &[
            ("REDIS_URL", &redis_url()),
            ("MQTT_BROKER_ID", "mqtt1"),
            ("BRIDGE_API_TOKEN", TOKEN),
            ("NODE_DEFAULT_SECRET", DEFAULT_SECRET),
            ("TELEMETRY_FLUSH_MS", "100"),
            ("HISTORY_STREAM", &format!("{prefix}:uplink")),
            ("HISTORY_DEAD_LETTER_KEY", &format!("{prefix}:dead-letter")),
            ("MQTT_SHARE_GROUP", &prefix),
            ("COMMAND_TIMEOUT_SEC", "30"),
            ("MQTT_ADMIN_USER", &admin.user),
            ("MQTT_ADMIN_PASS", &admin.pass),
            ("MQTT_PROVISION_USER", &provision.user),
            ("MQTT_PROVISION_PASS", &provision.pass),
        ],
    );
    testkit::set_vars(&mut vars, extra);
    vars
}

async fn stack() -> Stack {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    testkit::register_brokers(&db.pool, &[("mqtt1".to_owned(), broker.url())]).await;
    testkit::seed_zones(&db.pool, ("gh-1", "G1"), &[("zn-1", "Z1")]).await;
    let stop = StopOnDrop::new();
    let v = vars(&db, &broker, &[]);

    let (settings, history) = testkit::settings(&v, history_logger::HistorySettings::from_vars);
    let logger = history_logger::App::build(settings, history)
        .await
        .expect("history-logger starts");
    tokio::spawn(logger.run_until_stopped(stop.clone()));

    let (settings, device) = testkit::settings(&v, device_registry::DeviceSettings::from_vars);
    let registry = device_registry::App::build(settings, device)
        .await
        .expect("device-registry starts");
    let registry = Service::start(registry.port(), |stop| registry.run_until_stopped(stop));

    let bridge = testkit::stack::serve_bridge(&v, testkit::StopOnDrop::new()).await;

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
    let sim = testkit::stack::build_sim(&sim_vars).await;
    let node = sim.firmware_nodes()[0].clone();
    tokio::spawn(sim.run_until_stopped(stop.clone()));
    Stack {
        db,
        _broker: broker,
        _stop: stop,
        registry,
        bridge,
        node,
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
            .registry
            .call(
                reqwest::Method::GET,
                "/api/nodes?state=unbound",
                None,
                Some(TOKEN),
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
    let bind = json!({"greenhouse_uid": "gh-1", "zone_uid": "zn-1", "node_uid": "nd-fw-1"});
    let (code, body) = s
        .registry
        .call(
            reqwest::Method::POST,
            &format!("/api/nodes/{hardware_id}/bind"),
            Some(&bind.to_string()),
            Some(TOKEN),
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
    let stored = "SELECT count(*) FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id \
         JOIN zones z ON z.id = s.zone_id WHERE n.uid = 'nd-fw-1' AND z.uid = 'zn-1'";
    assert!(
        count_comes_to(&s.db.pool, stored, WAIT, |n| n > 0).await,
        "telemetry stored under zn-1"
    );
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
    let dose = json!({"cmd": "dose", "channel": "pump_acid", "params": {"ml": 2.0}});
    let (code, body) = s
        .bridge
        .call(
            reqwest::Method::POST,
            "/bridge/nodes/nd-fw-1/commands",
            Some(&dose.to_string()),
            Some(TOKEN),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let cmd_id = body["data"]["command_id"].as_str().unwrap().to_owned();
    let last = eventually(WAIT, || async {
        let (_, body) = s
            .bridge
            .call(
                reqwest::Method::GET,
                &format!("/bridge/commands/{cmd_id}"),
                None,
                Some(TOKEN),
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
