//! Per-node broker accounts, against a Mosquitto with authentication: a
//! bind creates the node's account before its NodeConfig goes out and the
//! config carries the login; the node logs in with it and works in its own
//! namespace only; a decommission removes the account.

mod helpers;

use std::time::Duration;

use common::mqtt::{MqttConfig, MqttConnection, MqttError};
use helpers::{FakeNode, TestRegistry, WAIT, spawn_secured_registry};
use serde_json::{Value, json};
use testkit::{Credentials, eventually};
use tokio_util::sync::CancellationToken;

const HW: &str = "esp32-0000000C0FFE";
const BIND: &str = r#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","node_uid":"nd-ph-acct"}"#;

/// A login attempt: whether `user`/`pass` connects within `wait`.
async fn logs_in(url: &str, user: &str, pass: &str, wait: Duration) -> Option<MqttConnection> {
    let mut c = MqttConfig::new("node", url, "login-check");
    c.username = Some(user.to_owned());
    c.password = Some(pass.to_owned().into());
    testkit::client::try_connect(c, wait, &CancellationToken::new()).await
}

/// Node `HW` on the secured registry: it logged in as provision, said
/// hello, and was bound as `nd-ph-acct`.
struct Bound {
    registry: TestRegistry,
    url: String,
    provision: Credentials,
    node: FakeNode,
    /// The NodeConfig the bind sent it, and the password in it.
    config: Value,
    password: String,
}

/// The secured registry with `extra`, and node `HW` bound on it.
async fn bound(extra: &[(&str, &str)]) -> Bound {
    let registry = spawn_secured_registry(extra).await;
    let broker = registry.secured.as_ref().unwrap();
    let (url, provision) = (broker.url(), broker.provision());
    let mut node = FakeNode::connect_as(&url, HW, Some((&provision.user, &provision.pass))).await;
    node.register(&registry, "ph").await;
    let (status, body) = registry.post(&format!("/api/nodes/{HW}/bind"), BIND).await;
    assert_eq!(status, 202, "{body}");
    let config = node
        .next_on(&format!("hydro/gh-temp/zn-temp/{HW}/config"))
        .await;
    let password = config["mqtt"]["password"]
        .as_str()
        .expect("a password")
        .to_owned();
    Bound {
        registry,
        url,
        provision,
        node,
        config,
        password,
    }
}

/// Publishes `config` (without its secret; with `fw_version` when given) as
/// `nd-ph-acct`'s config_report from zone `zn-1`.
async fn report(
    bound: &MqttConnection,
    config: &Value,
    fw_version: Option<&str>,
) -> Result<(), MqttError> {
    let mut report = config.clone();
    let o = report.as_object_mut().unwrap();
    o.remove("node_secret");
    if let Some(v) = fw_version {
        o.insert("fw_version".into(), json!(v));
    }
    bound
        .publish(
            "hydro/gh-1/zn-1/nd-ph-acct/config_report",
            report.to_string(),
            false,
        )
        .await
}

/// Node `HW`'s `column` in the database.
async fn stored<T>(registry: &TestRegistry, column: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let sql = format!("SELECT {column} FROM nodes WHERE hardware_id = $1");
    testkit::scalar_for(registry.pool(), &sql, HW).await
}

/// Waits until `nd-ph-acct` with `password` is refused; panics saying `what`
/// when it never is.
async fn until_refused(url: &str, password: &str, what: &str) {
    eventually(WAIT, || async {
        logs_in(url, "nd-ph-acct", password, Duration::from_secs(2))
            .await
            .is_none()
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_node_logs_in_with_its_own_account_until_decommissioned() {
    // The unbound node logs in as provision; anonymous clients are refused.
    let Bound {
        registry,
        url,
        node,
        config,
        password,
        ..
    } = bound(&[]).await;
    assert!(
        logs_in(&url, "", "", Duration::from_secs(2))
            .await
            .is_none(),
        "anonymous refused"
    );
    let mqtt = &config["mqtt"];
    assert_eq!(mqtt["username"], "nd-ph-acct");
    assert_eq!(mqtt["user"], "nd-ph-acct");
    assert!(password.len() >= 32);
    assert_eq!(mqtt["pass"], password.as_str());
    let stored_password: Option<String> = stored(&registry, "mqtt_password").await;
    assert_eq!(stored_password.as_deref(), Some(password.as_str()));

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
    report(&bound, &config, Some("2.0.1"))
        .await
        .expect("the node reports from its namespace");
    let listed = registry
        .wait_node(HW, "bound", |n| n["state"] == "bound")
        .await;
    assert!(
        !listed.to_string().contains(&password),
        "the API never shows the password"
    );
    let stored_report: Value = stored(&registry, "config").await;
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
    until_refused(
        &url,
        &password,
        "a decommissioned node's account is refused",
    )
    .await;
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_sync_restores_an_account_the_broker_lost() {
    let Bound {
        registry,
        url,
        node: _node,
        password,
        ..
    } = bound(&[("DEVICE_ACCOUNT_SYNC_SEC", "1")]).await;
    let broker = registry.secured.as_ref().unwrap();
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
    let Bound {
        registry,
        url,
        provision,
        node: _node,
        config,
        password,
    } = bound(&[]).await;

    // Bound: it runs on its own account and listens in its namespace.
    let stop = CancellationToken::new();
    let mut c = MqttConfig::new("node", &url, "bound-node");
    c.username = Some("nd-ph-acct".into());
    c.password = Some(password.clone().into());
    let (bound, mut inbox) =
        testkit::client::listen(c, &["hydro/gh-1/zn-1/nd-ph-acct/config"], WAIT, &stop).await;
    report(&bound, &config, None).await.unwrap();
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
    until_refused(&url, &password, "an unbound node's account is removed").await;
    // Its password is kept for a later bind.
    let kept: Option<String> = stored(&registry, "mqtt_password").await;
    assert_eq!(kept.as_deref(), Some(password.as_str()));
    stop.cancel();
}
