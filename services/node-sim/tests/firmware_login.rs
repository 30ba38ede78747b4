//! A firmware-mode node on a broker with authentication: unbound, it logs
//! in as the provision account with its hardware id as client id; a pushed
//! NodeConfig carrying a login of its own makes it reconnect with that login.

mod support;

use std::time::Duration;

use common::mqtt::Inbound;
use common::mqtt::accounts::{Namespace, NodeAccount, sync_nodes};
use proto::payloads::TimeResponse;
use proto::topics::{TIME_REQUEST, TIME_RESPONSE};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::firmware::{boot_custom, ph_config};
use support::{WAIT, now_secs, settings};
use testkit::TestBroker;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const NODE_PASS: &str = "nd-fw-password-0123456789abcdef0123";

/// The next message whose topic is `topic`.
async fn next_on(rx: &mut mpsc::Receiver<Inbound>, topic: &str) -> Inbound {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing on {topic}"))
            .unwrap();
        if m.topic == topic {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_as_provision_then_bound_with_its_own_login() {
    let broker = TestBroker::start().await;
    let provision = broker.provision();
    let stop = CancellationToken::new();
    let seed = format!("t-{}", uuid::Uuid::new_v4().simple());
    let hw = node_sim::firmware::hardware_id(&seed, 0);
    // The provision login works for this client id only.
    broker
        .dynsec(vec![
            json!({"command": "setClientId", "username": provision.user, "clientid": hw}),
        ])
        .await;
    let other = broker.config_as(&provision, "test", &provision.user);
    assert!(
        testkit::client::try_connect(other, Duration::from_secs(2), &stop)
            .await
            .is_none(),
        "the provision login with another client id is refused"
    );

    // The backend: answers time requests and watches everything.
    let (backend, mut seen) =
        testkit::client::listen(broker.backend_config(), &["hydro/#"], WAIT, &stop).await;

    let provision_pass = SecretString::from(provision.pass.clone());
    let running = boot_custom(
        &broker.url(),
        &seed,
        None,
        |sim| sim.mqtt_provision_pass = Some(provision_pass),
        settings(&[]),
    )
    .await;
    let node = running.node.clone();
    assert_eq!(node.hardware_id(), hw);

    // Unbound: in as hydro-provision (no other login could get in).
    next_on(&mut seen, TIME_REQUEST).await;
    let answer = serde_json::to_vec(&TimeResponse::at(now_secs())).unwrap();
    backend.publish(TIME_RESPONSE, answer, false).await.unwrap();
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");
    next_on(&mut seen, &format!("{temp}/status")).await;

    // Its account, as device-registry makes it, then its NodeConfig.
    let admin = broker.admin_connection(&stop).await;
    let account = NodeAccount {
        uid: "nd-fw-1".into(),
        namespaces: vec![Namespace {
            gh_uid: "gh-1".into(),
            zone_uid: "zn-1".into(),
        }],
        password: SecretString::from(NODE_PASS),
    };
    sync_nodes(&admin, &[account]).await.unwrap();
    let config = ph_config(
        "nd-fw-1",
        broker.port,
        json!({"username": "nd-fw-1", "password": NODE_PASS, "user": "nd-fw-1", "pass": NODE_PASS}),
        "nd-fw-1-secret-of-at-least-32-characters",
    );
    backend
        .publish(&format!("{temp}/config"), config, false)
        .await
        .unwrap();

    // It reconnects with its own login and reports from its namespace
    // (only nd-fw-1 may publish there), without the password.
    let ns = "hydro/gh-1/zn-1/nd-fw-1";
    let report = next_on(&mut seen, &format!("{ns}/config_report")).await;
    let report: Value = serde_json::from_slice(&report.payload).unwrap();
    assert_eq!(report["mqtt"]["username"], "nd-fw-1");
    assert!(!report.to_string().contains(NODE_PASS), "{report}");
    next_on(&mut seen, &format!("{ns}/ph_sensor/telemetry")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(node.is_connected());
    stop.cancel();
}
