//! Per-node broker accounts, against a Mosquitto with authentication: a
//! bind creates the node's account before its NodeConfig goes out and the
//! config carries the login; the node logs in with it and works in its own
//! namespace only; a decommission removes the account.

mod helpers;

use std::time::Duration;

use common::mqtt::{MqttConfig, MqttConnection, MqttError};
use helpers::{FakeNode, WAIT, spawn_secured_registry};
use serde_json::json;
use testkit::eventually;
use tokio_util::sync::CancellationToken;

const HW: &str = "esp32-0000000C0FFE";
const BIND: &str = r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","node_uid":"nd-ph-acct"}"#;

/// A login attempt: whether `user`/`pass` connects within `wait`.
async fn logs_in(url: &str, user: &str, pass: &str, wait: Duration) -> Option<MqttConnection> {
    let stop = CancellationToken::new();
    let mut c = MqttConfig::new("node", url, "login-check");
    c.username = Some(user.to_owned());
    c.password = Some(pass.to_owned().into());
    let connection = MqttConnection::start(c, None, stop.clone()).unwrap();
    let ok = connection.wait_connected(wait).await.is_ok();
    if !ok {
        stop.cancel();
    }
    ok.then_some(connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_node_logs_in_with_its_own_account_until_decommissioned() {
    let registry = spawn_secured_registry(&[]).await;
    let url = registry.secured.as_ref().unwrap().url();
    let provision = registry.secured.as_ref().unwrap().provision();

    // Anonymous clients are refused; the unbound node logs in as provision.
    assert!(
        logs_in(&url, "", "", Duration::from_secs(2))
            .await
            .is_none(),
        "anonymous refused"
    );
    let mut node = FakeNode::connect_as(&url, HW, Some((&provision.user, &provision.pass))).await;
    node.register(&registry, "ph").await;

    let (status, body) = registry.post(&format!("/api/nodes/{HW}/bind"), BIND).await;
    assert_eq!(status, 202, "{body}");
    let config = node
        .next_on(&format!("hydro/gh-temp/zn-temp/{HW}/config"))
        .await;
    let mqtt = &config["mqtt"];
    assert_eq!(mqtt["username"], "nd-ph-acct");
    assert_eq!(mqtt["user"], "nd-ph-acct");
    let password = mqtt["password"].as_str().expect("a password").to_owned();
    assert!(password.len() >= 32);
    assert_eq!(mqtt["pass"], password.as_str());
    let stored: Option<String> =
        sqlx::query_scalar("SELECT mqtt_password FROM nodes WHERE hardware_id = $1")
            .bind(HW)
            .fetch_one(registry.pool())
            .await
            .unwrap();
    assert_eq!(stored.as_deref(), Some(password.as_str()));

    // The account is on the broker as the config reaches the node.
    let bound = logs_in(&url, "nd-ph-acct", &password, WAIT)
        .await
        .expect("the node's account exists");
    assert!(
        logs_in(
            &url,
            "nd-ph-acct",
            "wrong-password-0123456789abcdef",
            Duration::from_secs(2)
        )
        .await
        .is_none()
    );
    // Its own namespace only.
    let refused = bound
        .publish(
            "hydro/gh-1/zn-2/nd-ph-acct/ph_sensor/telemetry",
            "{}",
            false,
        )
        .await;
    assert!(matches!(refused, Err(MqttError::Refused(_))), "{refused:?}");
    // Its config_report from the target namespace completes the bind.
    let mut report = config.clone();
    let o = report.as_object_mut().unwrap();
    o.remove("node_secret");
    o.insert("fw_version".into(), json!("2.0.1"));
    bound
        .publish(
            "hydro/gh-1/zn-1/nd-ph-acct/config_report",
            report.to_string(),
            false,
        )
        .await
        .expect("the node reports from its namespace");
    let listed = registry
        .wait_node(HW, "bound", |n| n["state"] == "bound")
        .await;
    assert!(
        !listed.to_string().contains(&password),
        "the API never shows the password"
    );
    let stored_report: serde_json::Value =
        sqlx::query_scalar("SELECT config FROM nodes WHERE hardware_id = $1")
            .bind(HW)
            .fetch_one(registry.pool())
            .await
            .unwrap();
    assert!(!stored_report.to_string().contains(&password));

    // A re-push keeps the login; the metrics count the account.
    let (status, _) = registry.post("/api/nodes/nd-ph-acct/config", "{}").await;
    assert!(status < 300, "{status}");
    assert!(
        registry
            .metric(r#"device_registry_accounts_synced_total{broker="mqtt1",outcome="created"}"#)
            .await
            >= 1.0
    );

    // Decommissioned: the account is gone.
    let (status, _) = registry
        .post("/api/nodes/nd-ph-acct/decommission", "{}")
        .await;
    assert!(status < 300, "{status}");
    eventually(WAIT, || async {
        logs_in(&url, "nd-ph-acct", &password, Duration::from_secs(2))
            .await
            .is_none()
            .then_some(())
    })
    .await
    .expect("a decommissioned node's account is refused");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_sync_restores_an_account_the_broker_lost() {
    let registry = spawn_secured_registry(&[("DEVICE_ACCOUNT_SYNC_SEC", "1")]).await;
    let broker = registry.secured.as_ref().unwrap();
    let url = broker.url();
    let provision = registry.secured.as_ref().unwrap().provision();
    let mut node = FakeNode::connect_as(&url, HW, Some((&provision.user, &provision.pass))).await;
    node.register(&registry, "ph").await;
    let (status, _) = registry.post(&format!("/api/nodes/{HW}/bind"), BIND).await;
    assert_eq!(status, 202);
    let config = node
        .next_on(&format!("hydro/gh-temp/zn-temp/{HW}/config"))
        .await;
    let password = config["mqtt"]["password"].as_str().unwrap().to_owned();
    logs_in(&url, "nd-ph-acct", &password, WAIT)
        .await
        .expect("account exists");
    // Someone deletes it on the broker: the sync brings it back.
    // (`dynsec` asserts the broker deleted it.)
    broker
        .dynsec(vec![
            serde_json::json!({"command": "deleteClient", "username": "nd-ph-acct"}),
        ])
        .await;
    eventually(WAIT, || async {
        logs_in(&url, "nd-ph-acct", &password, Duration::from_secs(2))
            .await
            .map(|_| ())
    })
    .await
    .expect("the sync restores the account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_node_goes_back_to_the_provision_login() {
    let registry = spawn_secured_registry(&[]).await;
    let url = registry.secured.as_ref().unwrap().url();
    let provision = registry.secured.as_ref().unwrap().provision();
    let mut node = FakeNode::connect_as(&url, HW, Some((&provision.user, &provision.pass))).await;
    node.register(&registry, "ph").await;
    let (status, _) = registry.post(&format!("/api/nodes/{HW}/bind"), BIND).await;
    assert_eq!(status, 202);
    let config = node
        .next_on(&format!("hydro/gh-temp/zn-temp/{HW}/config"))
        .await;
    let password = config["mqtt"]["password"].as_str().unwrap().to_owned();

    // Bound: it runs on its own account and listens in its namespace.
    let (tx, mut inbox) = tokio::sync::mpsc::channel(16);
    let stop = CancellationToken::new();
    let mut c = MqttConfig::new("node", &url, "bound-node");
    c.username = Some("nd-ph-acct".into());
    c.password = Some(password.clone().into());
    let bound = MqttConnection::start(c, Some(tx), stop.clone()).unwrap();
    bound
        .subscribe(
            "hydro/gh-1/zn-1/nd-ph-acct/config",
            common::QoS::AtLeastOnce,
        )
        .unwrap();
    bound.wait_connected(WAIT).await.unwrap();
    let mut report = config.clone();
    report.as_object_mut().unwrap().remove("node_secret");
    bound
        .publish(
            "hydro/gh-1/zn-1/nd-ph-acct/config_report",
            report.to_string(),
            false,
        )
        .await
        .unwrap();
    registry
        .wait_node(HW, "bound", |n| n["state"] == "bound")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Unbind: the temp config carries the provision login; the account goes.
    let (status, body) = registry.post("/api/nodes/nd-ph-acct/unbind", "{}").await;
    assert!(status < 300, "{status} {body}");
    let temp = tokio::time::timeout(WAIT, async {
        loop {
            let m = inbox.recv().await.expect("inbox open");
            if m.topic == "hydro/gh-1/zn-1/nd-ph-acct/config" {
                return serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap();
            }
        }
    })
    .await
    .expect("the temp config reaches the bound node");
    assert_eq!(temp["gh_uid"], "gh-temp");
    assert_eq!(temp["mqtt"]["username"], provision.user.as_str());
    assert_eq!(temp["mqtt"]["password"], provision.pass.as_str());
    eventually(WAIT, || async {
        logs_in(&url, "nd-ph-acct", &password, Duration::from_secs(2))
            .await
            .is_none()
            .then_some(())
    })
    .await
    .expect("an unbound node's account is removed");
    // Its password is kept for a later bind.
    let kept: Option<String> =
        sqlx::query_scalar("SELECT mqtt_password FROM nodes WHERE hardware_id = $1")
            .bind(HW)
            .fetch_one(registry.pool())
            .await
            .unwrap();
    assert_eq!(kept.as_deref(), Some(password.as_str()));
    stop.cancel();
}
