//! A node's provisioning end to end, against the real PostgreSQL and
//! Mosquitto, with the node played by a plain MQTT client: hello and temp
//! uplink register it unbound, a REST bind pushes its NodeConfig and stays
//! pending until the node's config_report from the target namespace, a
//! wrong report or the TTL do not bind it, the API demands its token, and
//! the config goes out on the broker the node is on.
//! Long (over 400 lines) because it is one flow, register → bind → confirm,
//! and its failure cases, each test a whole exchange with a played node.

mod helpers;

use std::time::Duration;

use helpers::{FakeNode, TOKEN, TestRegistry, WAIT, spawn_registry};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{count, eventually};

const BIND: &str =
    r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","node_uid":"nd-ph-tank1","name":"PH Tank A"}"#;

/// The config_report a firmware node sends after applying `config`, from
/// the namespace the config names.
fn report_for(config: &Value, zone: &str) -> (String, String) {
    let mut report = config.clone();
    report["zone_uid"] = json!(zone);
    report.as_object_mut().unwrap().remove("node_secret");
    report["fw_version"] = json!("2.0.1");
    report["channels"] = json!([
        {"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "poll_interval_ms": 3000},
        {"name": "pump_acid", "type": "ACTUATOR", "actuator_type": "PUMP"}
    ]);
    let topic = format!(
        "hydro/{}/{zone}/{}/config_report",
        config["gh_uid"].as_str().unwrap(),
        config["node_id"].as_str().unwrap()
    );
    (topic, report.to_string())
}

/// `node` sends its [`report_for`] `config` in `zone`.
async fn report(node: &FakeNode, config: &Value, zone: &str) {
    let (topic, report) = report_for(config, zone);
    node.publish(&topic, &report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_and_temp_uplink_register_an_unbound_node() {
    let registry = spawn_registry(1, &[]).await;
    let node = FakeNode::connect(&registry.brokers[0], "esp32-AABBCC112233").await;
    let listed = node.register(&registry, "ph").await;
    assert_eq!(listed["state"], "unbound");
    assert_eq!(listed["uid"], "nd-ph-112233");
    assert_eq!(listed["type"], "ph");
    assert_eq!(listed["fw_version"], "2.0.1");
    assert_eq!(listed["capabilities"], json!(["ph", "temperature"]));
    assert_eq!(listed["observed_broker_id"], "mqtt1");
    assert_eq!(listed["move_via"], "node_config");
    assert_eq!(listed["lifecycle"], "REGISTERED");
    let (status, list) = registry.get("/api/nodes?state=unbound").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, bound) = registry.get("/api/nodes?state=bound").await;
    assert!(bound["data"].as_array().unwrap().is_empty());

    // Temp-namespace telemetry: counted, its latest reading kept.
    let before = registry
        .metric(r#"device_registry_unbound_messages_total{kind="telemetry"}"#)
        .await;
    node.publish(
        "hydro/gh-temp/zn-temp/esp32-AABBCC112233/ph_sensor/telemetry",
        r#"{"metric_type":"PH","value":6.5,"ts":1737979200}"#,
    )
    .await;
    let seen = registry
        .wait_node("nd-ph-112233", "reading visible", |n| {
            n["readings"]["ph_sensor"]["value"] == 6.5
        })
        .await;
    assert_eq!(seen["readings"]["ph_sensor"]["metric"], "PH");
    assert!(
        registry
            .metric(r#"device_registry_unbound_messages_total{kind="telemetry"}"#)
            .await
            > before
    );

    // A node never seen before that only sends temp uplink is registered too.
    node.publish(
        "hydro/gh-temp/zn-temp/esp32-DDEEFF445566/heartbeat",
        r#"{"uptime":10,"free_heap":100000}"#,
    )
    .await;
    let other = registry
        .wait_node("esp32-DDEEFF445566", "registered from uplink", |_| true)
        .await;
    assert_eq!(other["type"], "unknown");
    assert_eq!(other["state"], "unbound");

    // A bad payload is counted and changes nothing.
    let dropped = registry
        .metric("device_registry_messages_dropped_total")
        .await;
    node.publish("hydro/node_hello", "not json").await;
    eventually(WAIT, || async {
        (registry
            .metric("device_registry_messages_dropped_total")
            .await
            > dropped)
            .then_some(())
    })
    .await
    .expect("the bad hello is counted");
    assert_eq!(
        count(registry.pool(), "SELECT count(*) FROM nodes").await,
        2
    );
}

/// A registry on one broker and node `hardware_id` on it, listening also
/// where it will once bound as `nd-ph-tank1`.
async fn tank_node(hardware_id: &str) -> (TestRegistry, FakeNode) {
    let registry = spawn_registry(1, &[]).await;
    let node = FakeNode::connect(&registry.brokers[0], hardware_id).await;
    node.connection
        .subscribe(
            "hydro/gh-1/zn-1/nd-ph-tank1/config",
            common::QoS::AtLeastOnce,
        )
        .unwrap();
    (registry, node)
}

/// `nd-ph-tank1` as the registry lists it once bound.
async fn until_bound(registry: &TestRegistry) -> Value {
    registry
        .wait_node("nd-ph-tank1", "bound", |n| n["state"] == "bound")
        .await
}

/// Registers a node, binds it to zn-1 and returns the config it received.
async fn bind_and_receive(registry: &TestRegistry, node: &mut FakeNode) -> Value {
    node.register(registry, "ph").await;
    let (status, body) = registry
        .post(&format!("/api/nodes/{}/bind", node.hardware_id), BIND)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["state"], "pending");
    assert_eq!(body["data"]["bind"]["zone_uid"], "zn-1");
    node.next_on(&format!(
        "hydro/gh-temp/zn-temp/{}/config",
        node.hardware_id
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_completes_only_on_the_config_report_from_the_target_namespace() {
    let (registry, mut node) = tank_node("esp32-00000000A1B2").await;
    let config = bind_and_receive(&registry, &mut node).await;
    assert_eq!(config["gh_uid"], "gh-1");
    assert_eq!(config["zone_uid"], "zn-1");
    assert_eq!(config["node_id"], "nd-ph-tank1");
    assert_eq!(config["version"], 3);
    assert_eq!(config["mqtt"]["host"], "127.0.0.1");
    assert_eq!(config["mqtt"]["port"], registry.brokers[0].port);
    let secret = config["node_secret"].as_str().expect("a secret").to_owned();
    assert!(secret.len() >= 32, "{secret}");
    assert_eq!(
        config["channels"].as_array().unwrap().len(),
        3,
        "the ph type's defaults"
    );

    // Pending: no zone yet, the secret not yet the node's.
    let pending = registry
        .wait_node("esp32-00000000A1B2", "pending", |n| n["state"] == "pending")
        .await;
    assert!(pending["zone_uid"].is_null());
    let zone: Option<i64> =
        sqlx::query_scalar("SELECT zone_id FROM nodes WHERE hardware_id = 'esp32-00000000A1B2'")
            .fetch_one(registry.pool())
            .await
            .unwrap();
    assert!(zone.is_none());

    // A report from another zone does not complete it.
    report(&node, &config, "zn-2").await;
    node.barrier(&registry, "marker-1").await;
    let (_, still) = registry.get("/api/nodes/esp32-00000000A1B2").await;
    assert_eq!(still["data"]["state"], "pending");

    // A retry of the same bind publishes the same config again.
    let (status, _) = registry
        .post("/api/nodes/esp32-00000000A1B2/bind", BIND)
        .await;
    assert_eq!(status, 202);
    let again = node
        .next_on("hydro/gh-temp/zn-temp/esp32-00000000A1B2/config")
        .await;
    assert_eq!(again["node_secret"], secret.as_str());

    // The right one does.
    let (topic, report) = report_for(&config, "zn-1");
    assert_eq!(topic, "hydro/gh-1/zn-1/nd-ph-tank1/config_report");
    node.publish(&topic, &report).await;
    let bound = registry
        .wait_node("esp32-00000000A1B2", "bound", |n| n["state"] == "bound")
        .await;
    assert_eq!(bound["uid"], "nd-ph-tank1");
    assert_eq!(bound["zone_uid"], "zn-1");
    assert_eq!(bound["greenhouse_uid"], "gh-1");
    assert_eq!(bound["name"], "PH Tank A");
    assert_eq!(bound["lifecycle"], "ASSIGNED");
    assert_eq!(bound["fw_version"], "2.0.1");
    assert_eq!(bound["bind"]["state"], "DONE");
    assert!(
        bound["config"].get("node_secret").is_none(),
        "no secret stored in config"
    );
    let (stored_secret, config_secret): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT secret, config->>'node_secret' FROM nodes WHERE uid = 'nd-ph-tank1'",
    )
    .fetch_one(registry.pool())
    .await
    .unwrap();
    assert_eq!(stored_secret.as_deref(), Some(secret.as_str()));
    assert!(config_secret.is_none());
    let channels: Vec<(String, String, Option<String>)> =
        sqlx::query_as(
            "SELECT c.channel, c.type, c.metric_type FROM node_channels c JOIN nodes n ON n.id = c.node_id \
              WHERE n.uid = 'nd-ph-tank1' ORDER BY c.channel",
        )
            .fetch_all(registry.pool())
            .await
            .unwrap();
    assert_eq!(
        channels,
        [
            ("ph_sensor".into(), "sensor".into(), Some("PH".into())),
            ("pump_acid".into(), "actuator".into(), None)
        ]
    );

    // Binding it to the same zone again changes nothing.
    let (status, body) = registry.post("/api/nodes/nd-ph-tank1/bind", BIND).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["state"], "bound");

    // Unbind: a temp-namespace config to where it listens now, zone cleared.
    let (status, body) = registry.post("/api/nodes/nd-ph-tank1/unbind", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["state"], "unbound");
    assert!(body["data"]["zone_uid"].is_null());
    let detach = node.next_on("hydro/gh-1/zn-1/nd-ph-tank1/config").await;
    assert_eq!(detach["gh_uid"], "gh-temp");
    assert_eq!(detach["zone_uid"], "zn-temp");
    assert_eq!(detach["node_secret"], secret.as_str());
    let (status, body) = registry.post("/api/nodes/nd-ph-tank1/unbind", "").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "node_not_bound");

    // Its config again, now on the temp topic.
    let (status, _) = registry.post("/api/nodes/nd-ph-tank1/config", "").await;
    assert_eq!(status, 200);
    let pushed = node
        .next_on("hydro/gh-temp/zn-temp/esp32-00000000A1B2/config")
        .await;
    assert_eq!(pushed["zone_uid"], "zn-temp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_without_report_expires() {
    let registry = spawn_registry(1, &[("DEVICE_BIND_TTL_SEC", "1")]).await;
    let mut node = FakeNode::connect(&registry.brokers[0], "esp32-EXPIRE000001").await;
    bind_and_receive(&registry, &mut node).await;
    let expired = registry
        // Both: GET reads the pending flag and the latest bind in two queries,
        // so one answer can straddle the expiry (seen in CI under load).
        .wait_node("esp32-EXPIRE000001", "bind expired", |n| {
            n["bind"]["state"] == "EXPIRED" && n["state"] == "unbound"
        })
        .await;
    assert_eq!(expired["state"], "unbound");
    assert!(expired["zone_uid"].is_null());
    assert_eq!(expired["uid"], "nd-ph-000001");
    // A late report from the target namespace binds nothing.
    let config =
        json!({"gh_uid": "gh-1", "node_id": "nd-ph-tank1", "version": 3, "type": "ph", "mqtt": {}});
    report(&node, &config, "zn-1").await;
    node.barrier(&registry, "marker-2").await;
    let bound = count(
        registry.pool(),
        "SELECT count(*) FROM nodes WHERE zone_id IS NOT NULL",
    )
    .await;
    assert_eq!(bound, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_demands_its_token_and_names_bad_fields() {
    let registry = spawn_registry(1, &[]).await;
    let node = FakeNode::connect(&registry.brokers[0], "esp32-AUTH00000001").await;
    node.register(&registry, "ec").await;
    let path = "/api/nodes/esp32-AUTH00000001/bind";
    for token in [None, Some("wrong-token")] {
        let (status, body) = registry.call(Method::POST, path, Some(BIND), token).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], "unauthorized");
        let (status, _) = registry.call(Method::GET, "/api/nodes", None, token).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        count(registry.pool(), "SELECT count(*) FROM node_binds").await,
        0
    );
    let (_, n) = registry.get("/api/nodes/esp32-AUTH00000001").await;
    assert_eq!(n["data"]["state"], "unbound");

    let (status, body) = registry.post(path, r#"{"greenhouse_uid":"gh-1"}"#).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_field");
    assert!(
        body["message"].as_str().unwrap().contains("zone_uid"),
        "{body}"
    );
    let (status, body) = registry
        .post(path, r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-9"}"#)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "zone_not_found");
    let (status, body) = registry.post("/api/nodes/nd-nobody/bind", BIND).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "node_not_found");
    assert_eq!(
        count(registry.pool(), "SELECT count(*) FROM node_binds").await,
        0
    );

    // Decommissioned: a bind is a conflict.
    let (status, _) = registry
        .post("/api/nodes/esp32-AUTH00000001/decommission", "")
        .await;
    assert_eq!(status, 200);
    let (status, body) = registry.post(path, BIND).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "node_decommissioned");

    // Health and metrics need no token.
    let (status, _) = registry.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, 200);
    let _ = TOKEN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_goes_out_on_the_broker_the_node_is_on() {
    let registry = spawn_registry(2, &[]).await;
    let mut on_b = FakeNode::connect(&registry.brokers[1], "esp32-BROKERB00001").await;
    let mut on_a = FakeNode::connect(&registry.brokers[0], "esp32-BROKERB00001").await;
    let listed = on_b.register(&registry, "ph").await;
    assert_eq!(listed["observed_broker_id"], "mqtt2");
    let (status, body) = registry
        .post("/api/nodes/esp32-BROKERB00001/bind", BIND)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["bind"]["broker_id"], "mqtt2");
    let config = on_b
        .next_on("hydro/gh-temp/zn-temp/esp32-BROKERB00001/config")
        .await;
    assert_eq!(config["mqtt"]["port"], registry.brokers[1].port);
    assert!(
        !on_a.anything_within(Duration::from_secs(2)).await,
        "nothing on broker A"
    );

    // The node answers from broker B: bound, observed there.
    report(&on_b, &config, "zn-1").await;
    let bound = until_bound(&registry).await;
    assert_eq!(bound["observed_broker_id"], "mqtt2");

    // A pending move of the node to broker B is confirmed by its report there.
    sqlx::query(
        "INSERT INTO node_broker_assignments (node_id, broker_id, strategy, previous_broker_id) \
         SELECT id, 'mqtt2', 'manual', 'mqtt1' FROM nodes WHERE uid = 'nd-ph-tank1'",
    )
    .execute(registry.pool())
    .await
    .unwrap();
    report(&on_b, &config, "zn-1").await;
    let confirmed = testkit::wait_count(
        registry.pool(),
        "SELECT count(*) FROM node_broker_assignments WHERE confirmed_at IS NOT NULL",
        1,
    )
    .await;
    assert_eq!(confirmed, 1);
    let _ = WAIT;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebind_goes_through_pending_from_the_current_namespace() {
    let (registry, mut node) = tank_node("esp32-REBIND000001").await;
    let config = bind_and_receive(&registry, &mut node).await;
    report(&node, &config, "zn-1").await;
    until_bound(&registry).await;

    let rebind = r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-2"}"#;
    let (status, body) = registry.post("/api/nodes/nd-ph-tank1/bind", rebind).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["state"], "pending");
    assert!(
        body["data"]["zone_uid"].is_null(),
        "out of its old zone while pending"
    );
    let moved = node.next_on("hydro/gh-1/zn-1/nd-ph-tank1/config").await;
    assert_eq!(moved["zone_uid"], "zn-2");
    assert_eq!(moved["node_id"], "nd-ph-tank1");
    assert_ne!(
        moved["node_secret"], config["node_secret"],
        "a fresh secret"
    );

    report(&node, &moved, "zn-2").await;
    let bound = registry
        .wait_node("nd-ph-tank1", "bound in zn-2", |n| n["zone_uid"] == "zn-2")
        .await;
    assert_eq!(bound["state"], "bound");
    let secret: Option<String> =
        sqlx::query_scalar("SELECT secret FROM nodes WHERE uid = 'nd-ph-tank1'")
            .fetch_one(registry.pool())
            .await
            .unwrap();
    assert_eq!(secret.as_deref(), moved["node_secret"].as_str());
}
