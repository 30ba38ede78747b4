//! Placement that follows where nodes really are (issue 10): a node that
//! cannot follow a config/update is assigned where it is observed and never
//! announced a move; a firmware node is moved by a NodeConfig push and
//! confirmed by being observed on its new broker; a recovered broker gets
//! nodes back by the rebalance its plan shows.

mod helpers;

use std::collections::BTreeSet;
use std::time::Duration;

use common::mqtt::MqttConfig;
use helpers::{
    TestRegistry, WAIT, nodes_on, seed_nodes, spawn_assigning, update_reader, with_mqtt3_empty,
};
use proto::payloads::NodeConfig;
use reqwest::Method;
use serde_json::Value;
use testkit::eventually;
use tokio_util::sync::CancellationToken;

/// The node uids with a retained config/update on the broker at `url`, as a
/// fresh subscriber sees them within a moment.
async fn retained_update_nodes(url: &str) -> BTreeSet<String> {
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let (_reader, mut rx) = update_reader(url, &stop).await;
    let mut seen = BTreeSet::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        if m.retain {
            seen.insert(m.topic.split('/').nth(1).unwrap().to_owned());
        }
    }
    seen
}

/// What [`retained_update_nodes`] finds on the broker at `url` once it
/// includes `expected`; panics saying `what` when it never does.
async fn announced(url: &str, expected: &BTreeSet<String>, what: &str) -> BTreeSet<String> {
    eventually(WAIT, || async {
        let seen = retained_update_nodes(url).await;
        seen.is_superset(expected).then_some(seen)
    })
    .await
    .unwrap_or_else(|| panic!("{what}"))
}

/// Two primary brokers assigning by `strategy`, and the zones of
/// [`seed_nodes`] without a node yet.
async fn two_brokers(strategy: &str) -> TestRegistry {
    let r = spawn_assigning(&["primary", "primary"], strategy).await;
    seed_nodes(r.pool(), 0, 0).await;
    r
}

/// Marks node `uid` observed on `broker` now (what history-logger does from
/// each uplink).
async fn observe(r: &TestRegistry, uid: &str, broker: &str) {
    sqlx::query("UPDATE nodes SET observed_broker_id = $2, observed_at = now() WHERE uid = $1")
        .bind(uid)
        .bind(broker)
        .execute(r.pool())
        .await
        .unwrap();
}

/// A node of zone `zn-normal` with a fixed id, moved by `via`, observed on
/// `seen_on` now (in one statement: the engine never sees it half-made).
async fn insert_node(r: &TestRegistry, id: i64, uid: &str, via: &str, seen_on: Option<&str>) {
    sqlx::query(
        "INSERT INTO nodes (id, uid, zone_id, type, move_via, observed_broker_id, observed_at) \
         SELECT $1, $2, id, 'ph', $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE now() END \
         FROM zones WHERE uid = 'zn-normal'",
    )
    .bind(id)
    .bind(uid)
    .bind(via)
    .bind(seen_on)
    .execute(r.pool())
    .await
    .unwrap();
}

/// (broker, strategy, confirmed) of node `uid`'s assignment.
async fn assignment(r: &TestRegistry, uid: &str) -> Option<(String, String, bool)> {
    sqlx::query_as(
        "SELECT a.broker_id, a.strategy, a.confirmed_at IS NOT NULL FROM node_broker_assignments a \
         JOIN nodes n ON n.id = a.node_id WHERE n.uid = $1",
    )
    .bind(uid)
    .fetch_optional(r.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_follow_config_update_is_assigned_where_observed_and_never_announced() {
    // Firmware nodes and a node that cannot move at all, each on the broker
    // static placement would NOT give it (node_id % 2 == 0 → mqtt1).
    let r = two_brokers("static").await;
    // Ids fixed so static's choice is known: even ids go to mqtt1.
    insert_node(&r, 1, "nd-classic-1", "config_update", None).await;
    insert_node(&r, 3, "nd-classic-3", "config_update", None).await;
    insert_node(&r, 2, "nd-fw-2", "node_config", Some("mqtt2")).await;
    insert_node(&r, 4, "nd-stuck-4", "none", Some("mqtt2")).await;
    let firmware = ["nd-fw-2".to_owned()];
    let stuck = "nd-stuck-4".to_owned();
    r.wait_assigned(4).await;
    for uid in firmware.iter().chain([&stuck]) {
        let (broker, strategy, confirmed) = assignment(&r, uid).await.unwrap();
        assert_eq!(
            (broker.as_str(), strategy.as_str(), confirmed),
            ("mqtt2", "observed", true),
            "{uid}"
        );
    }
    // The config_update nodes are announced; the others never are.
    let classic: BTreeSet<String> = ["nd-classic-1", "nd-classic-3"]
        .into_iter()
        .map(String::from)
        .collect();
    for b in &r.brokers {
        let retained = announced(&b.url(), &classic, "config_update nodes are announced").await;
        assert_eq!(
            retained, classic,
            "no move announced to a node that cannot follow it"
        );
    }
    // A broker that joins gets every node's config/update — but only theirs.
    let joined = testkit::TestBroker::start().await;
    let add = format!(r#"{{"id":"mqtt3","url":"{}"}}"#, joined.url());
    assert_eq!(r.send(Method::POST, "/api/brokers", &add).await.0, 201);
    let retained = announced(
        &joined.url(),
        &classic,
        "a joining broker gets the config/updates",
    )
    .await;
    assert_eq!(
        retained, classic,
        "none for the nodes that cannot follow them"
    );
    // The API shows how each node moves and where it is seen.
    let (code, body) = r.get("/api/assignments").await;
    assert_eq!(code, 200);
    let row = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["node_uid"] == stuck.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["move_via"], "none");
    assert_eq!(row["observed_broker_id"], "mqtt2");

    // Seen elsewhere later (it moved by itself): the assignment follows.
    observe(&r, &stuck, "mqtt1").await;
    let followed = eventually(WAIT, || async {
        let (broker, _, confirmed) = assignment(&r, &stuck).await?;
        (broker == "mqtt1" && confirmed).then_some(())
    })
    .await;
    assert!(followed.is_some(), "the assignment follows the observation");
    for b in &r.brokers {
        assert!(!retained_update_nodes(&b.url()).await.contains(&stuck));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firmware_node_is_moved_by_a_node_config_push_and_confirmed_when_seen_there() {
    let r = two_brokers("dynamic").await;
    insert_node(&r, 1, "nd-n-1", "node_config", Some("mqtt1")).await;
    r.wait_assigned(1).await;
    assert_eq!(
        assignment(&r, "nd-n-1").await.unwrap().0,
        "mqtt1",
        "assigned where observed"
    );

    // The node listens on its config topic, on the broker it is connected to.
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let (node, mut configs) = testkit::client::listen(
        testkit::login(MqttConfig::new("mqtt1", &r.brokers[0].url(), "fw-node")),
        &["hydro/gh-r/zn-normal/nd-n-1/config"],
        WAIT,
        &stop,
    )
    .await;
    testkit::client::settle(&node).await;

    // Draining its broker makes the rebalance move it.
    let (code, _) = r.patch_broker("mqtt1", r#"{"draining":true}"#).await;
    assert_eq!(code, 200);
    let (code, body) = r.send(Method::POST, "/api/rebalance", "{}").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["moves"][0]["to"], "mqtt2", "{body}");

    let message = tokio::time::timeout(WAIT, configs.recv())
        .await
        .expect("a NodeConfig arrives")
        .unwrap();
    let config = NodeConfig::decode(&message.payload).expect("a NodeConfig v3");
    assert_eq!(config.node_id, "nd-n-1");
    assert_eq!(config.mqtt["host"], "127.0.0.1");
    assert_eq!(config.mqtt["port"], Value::from(r.brokers[1].port));
    assert!(config.node_secret.is_some());
    let (broker, _, confirmed) = assignment(&r, "nd-n-1").await.unwrap();
    assert_eq!((broker.as_str(), confirmed), ("mqtt2", false));
    for b in &r.brokers {
        assert!(retained_update_nodes(&b.url()).await.is_empty());
    }

    // Its config_report (any uplink) arrives on the new broker: confirmed.
    observe(&r, "nd-n-1", "mqtt2").await;
    let confirmed = eventually(WAIT, || async {
        let (broker, _, confirmed) = assignment(&r, "nd-n-1").await?;
        (broker == "mqtt2" && confirmed).then_some(())
    })
    .await;
    assert!(
        confirmed.is_some(),
        "the move is confirmed by the observation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_broker_gets_nodes_back_by_the_rebalance_its_plan_shows() {
    // No automatic rebalance: the plan shows what a manual one does.
    let r = with_mqtt3_empty(
        9,
        &[
            ("ASSIGNMENT_STRATEGY", "dynamic"),
            ("REBALANCE_MAX_MOVES", "2"),
        ],
    )
    .await;
    let (code, body) = r.get("/api/rebalance/plan").await;
    assert_eq!(code, 200);
    let plan = body["data"]["moves"].as_array().unwrap().clone();
    assert!(
        !plan.is_empty() && plan.iter().all(|m| m["to"] == "mqtt3"),
        "{body}"
    );
    // Running it does exactly that.
    let (code, applied) = r.send(Method::POST, "/api/rebalance", "").await;
    assert_eq!(code, 200, "{applied}");
    assert_eq!(
        applied["data"]["moves"].as_array().unwrap().len(),
        plan.len()
    );
    assert_eq!(nodes_on(&r, "mqtt3").await, plan.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_broker_is_refilled_gradually_by_the_automatic_rebalance() {
    let r = with_mqtt3_empty(
        9,
        &[
            ("ASSIGNMENT_STRATEGY", "static"),
            ("REBALANCE_INTERVAL_SEC", "1"),
            ("REBALANCE_MAX_MOVES", "1"),
            ("MOVE_COOLDOWN_SEC", "3600"),
        ],
    )
    .await;
    // Static: the nodes whose place is mqtt3 go back, one per round, though
    // a failover moved them only a moment ago (that is no flapping).
    let refilled = eventually(WAIT, || async {
        (nodes_on(&r, "mqtt3").await == 3).then_some(())
    })
    .await;
    assert!(refilled.is_some(), "mqtt3 gets its static share back");
}
