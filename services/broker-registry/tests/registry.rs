//! broker-registry against real PostgreSQL and private Mosquitto brokers:
//! the three assignment strategies, the announcements, the API, health.

mod helpers;

use std::collections::HashMap;
use std::time::Duration;

use common::mqtt::{MqttConfig, MqttConnection};
use helpers::{WAIT, seed_nodes, spawn_assigning, update_reader};
use proto::payloads::ConfigUpdate;
use reqwest::Method;
use testkit::{TestBroker, eventually};
use tokio_util::sync::CancellationToken;

/// Every retained config/update on the broker at `url`, by node uid, as a
/// fresh subscriber sees them. A config published while the reader was
/// already subscribed arrives live (retain flag cleared), which proves
/// nothing about what is kept: the reader then subscribes again.
async fn retained_configs(url: &str, expect: usize) -> HashMap<String, ConfigUpdate> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stop = CancellationToken::new();
        let _guard = stop.clone().drop_guard();
        let (_reader, mut rx) = update_reader(url, &stop).await;
        let mut seen = HashMap::new();
        let mut live = false;
        while seen.len() < expect && !live && tokio::time::Instant::now() < deadline {
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                live = !m.retain;
                let node = m.topic.split('/').nth(1).unwrap().to_owned();
                seen.insert(
                    node,
                    ConfigUpdate::decode(&m.payload).expect("contract payload"),
                );
            }
        }
        if !live || tokio::time::Instant::now() >= deadline {
            assert!(!live, "config/update is retained");
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assignment_is_node_id_modulo_broker_count_and_announced_on_every_broker() {
    let r = spawn_assigning(&["primary", "primary", "primary"], "static").await;
    let ids = seed_nodes(r.pool(), 7, 2).await;
    let mapping = r.wait_assigned(9).await;
    let order = ["mqtt1", "mqtt2", "mqtt3"];
    for (uid, broker) in &mapping {
        let expected = order[(ids[uid] % 3) as usize];
        assert_eq!(broker, expected, "{uid} (id {})", ids[uid]);
    }
    // The retained config/update of every node is on every broker, naming
    // its broker, with the other brokers as fallbacks.
    for b in &r.brokers {
        let configs = retained_configs(&b.url(), 9).await;
        assert_eq!(configs.len(), 9, "all configs on {}", b.url());
        for (uid, config) in configs {
            let i = order.iter().position(|o| *o == mapping[&uid]).unwrap();
            assert_eq!(config.broker_id, mapping[&uid]);
            assert_eq!(config.mqtt_broker, r.brokers[i].url());
            assert_eq!(config.fallback.len(), 2);
            assert!(!config.fallback.contains(&config.mqtt_broker));
        }
    }
    let strategies: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT strategy FROM node_broker_assignments")
            .fetch_all(r.pool())
            .await
            .unwrap();
    assert_eq!(strategies, ["static"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_assignment_keeps_new_nodes_off_the_busy_broker() {
    let r = spawn_assigning(&["primary", "primary", "primary"], "dynamic").await;
    // 300 idle clients on mqtt1: its load index rises by about 0.1.
    let load = CancellationToken::new();
    let _guard = load.clone().drop_guard();
    let clients: Vec<MqttConnection> = (0..300)
        .map(|_| {
            MqttConnection::start(
                testkit::login(MqttConfig::new("load", &r.brokers[0].url(), "load")),
                None,
                load.clone(),
            )
            .unwrap()
        })
        .collect();
    let busy = eventually(WAIT, || async {
        let loads: Vec<(String, f64, i32)> =
            sqlx::query_as("SELECT id, load_index, connections FROM brokers ORDER BY id")
                .fetch_all(r.pool())
                .await
                .ok()?;
        (loads[0].2 >= 300 && loads[0].1 > loads[1].1 + 0.05 && loads[0].1 > loads[2].1 + 0.05)
            .then_some(loads)
    })
    .await;
    assert!(busy.is_some(), "the registry sees mqtt1's load");
    assert!(clients.iter().all(MqttConnection::is_connected));
    seed_nodes(r.pool(), 12, 0).await;
    let mapping = r.wait_assigned(12).await;
    assert!(
        mapping.values().all(|b| b != "mqtt1"),
        "no node on the busy broker: {mapping:?}"
    );
    // Dynamic fills the least projected load first, one node adding
    // NODE_LOAD_ESTIMATE: the twelve spread over mqtt2 and mqtt3 only when
    // their measured loads are that close. On a busy machine the $SYS rates
    // of two idle brokers can differ by more, and then all go to the lighter.
    let loads = busy.expect("loads");
    let (l2, l3) = (loads[1].1, loads[2].1);
    let on_2 = mapping.values().filter(|b| *b == "mqtt2").count();
    if (l2 - l3).abs() < common::placement::balance::NODE_LOAD_ESTIMATE {
        assert!(
            on_2 > 0 && on_2 < 12,
            "spread over the other two (loads {l2}, {l3}): {mapping:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_puts_critical_zones_on_dedicated_brokers_and_a_standby_takes_none() {
    let r = spawn_assigning(&["primary", "primary", "dedicated", "standby"], "priority").await;
    seed_nodes(r.pool(), 8, 3).await;
    let mapping = r.wait_assigned(11).await;
    for (uid, broker) in &mapping {
        if uid.starts_with("nd-c-") {
            assert_eq!(broker, "mqtt3", "{uid} is in a critical zone");
        } else {
            assert!(broker == "mqtt1" || broker == "mqtt2", "{uid} on {broker}");
        }
    }
    assert!(
        mapping.values().all(|b| b != "mqtt4"),
        "the standby takes no node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_adds_disables_drains_and_rebalances_with_a_plan_first() {
    let r = spawn_assigning(&["primary", "primary", "primary"], "static").await;
    seed_nodes(r.pool(), 9, 0).await;
    r.wait_assigned(9).await;

    let (status, body) = r.get("/api/brokers").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert_eq!(body["data"][0]["nodes"], 3);

    // Bad input: JSON errors that say what to fix.
    for (body, code) in [
        (r#"{"id":"mqtt9","url":"tcp://x:1"}"#, "invalid_url"),
        (r#"{"id":"bad id","url":"mqtt://x:1"}"#, "invalid_id"),
        (
            r#"{"id":"mqtt9","url":"mqtt://x:1","role":"boss"}"#,
            "invalid_role",
        ),
        (r#"{"id":"mqtt9"}"#, "invalid_body"),
        ("[1]", "invalid_body"),
        ("{", "invalid_json"),
    ] {
        let (status, answer) = r.send(Method::POST, "/api/brokers", body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["status"], "error");
        assert_eq!(answer["code"], code, "{body}: {answer}");
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
    let dup = format!(r#"{{"id":"mqtt1","url":"{}"}}"#, r.brokers[1].url());
    assert_eq!(r.send(Method::POST, "/api/brokers", &dup).await.0, 409);
    let (status, answer) = r.patch_broker("nope", r#"{"enabled":false}"#).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("broker_not_found"))
    );
    assert_eq!(
        r.patch_broker("mqtt1", "{}").await.1["code"],
        "empty_change"
    );

    // Add a broker: listed, and its connection comes up.
    let extra = TestBroker::start().await;
    let add = format!(
        r#"{{"id":"mqtt4","url":"{}","role":"optional"}}"#,
        extra.url()
    );
    assert_eq!(r.send(Method::POST, "/api/brokers", &add).await.0, 201);
    let seen = eventually(WAIT, || async {
        let (_, body) = r.get("/api/brokers/mqtt4").await;
        (body["data"]["samples"]
            .as_array()?
            .iter()
            .any(|s| s["probe_ok"] == true))
        .then_some(())
    })
    .await;
    assert!(seen.is_some(), "the added broker is probed");

    // Drain mqtt1: the plan shows its nodes moving and changes nothing...
    assert_eq!(r.patch_broker("mqtt1", r#"{"draining":true}"#).await.0, 200);
    let (status, plan) = r.get("/api/rebalance/plan").await;
    assert_eq!(status, 200);
    let moves = plan["data"]["moves"].as_array().unwrap().clone();
    assert!(!moves.is_empty());
    assert!(
        moves
            .iter()
            .all(|m| m["from"] == "mqtt1" && m["to"] != "mqtt1"),
        "{plan}"
    );
    let on_1 =
        |mapping: &HashMap<String, String>| mapping.values().filter(|b| *b == "mqtt1").count();
    assert_eq!(on_1(&r.wait_assigned(9).await), 3, "a plan is only a plan");
    // ...and applying it moves them.
    let (status, applied) = r.send(Method::POST, "/api/rebalance", "").await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["data"]["moves"].as_array().unwrap().len(), 3);
    assert_eq!(on_1(&r.wait_assigned(9).await), 0);
    let (_, assignments) = r.get("/api/assignments?broker=mqtt1").await;
    assert_eq!(assignments["data"].as_array().unwrap().len(), 0);
    let (status, bad) = r.get("/api/rebalance/plan?strategy=random").await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_strategy"))
    );

    // Disable mqtt4: the registry lets its connection go.
    assert_eq!(r.patch_broker("mqtt4", r#"{"enabled":false}"#).await.0, 200);
    let (_, body) = r.get("/api/brokers").await;
    let b4 = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "mqtt4")
        .unwrap()
        .clone();
    assert_eq!(b4["enabled"], false);
}
