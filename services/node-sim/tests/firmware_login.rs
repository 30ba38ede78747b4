//! A firmware-mode node on a broker with authentication: unbound, it logs
//! in as the provision account with its hardware id as client id; a pushed
//! NodeConfig carrying a login of its own makes it reconnect with that login.

mod support;

use std::time::Duration;

use common::QoS;
use common::mqtt::accounts::{Namespace, NodeAccount, sync_nodes};
use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use node_sim::settings::SimMode;
use node_sim::{App, SimSettings};
use proto::payloads::TimeResponse;
use proto::topics::{TIME_REQUEST, TIME_RESPONSE};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{WAIT, now_secs, settings};
use testkit::TestBroker;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const NODE_PASS: &str = "nd-fw-password-0123456789abcdef0123";

fn login(url: &str, user: &str, pass: &str) -> MqttConfig {
    let mut c = MqttConfig::new("test", url, user);
    c.username = Some(user.to_owned());
    c.password = Some(SecretString::from(pass));
    c
}

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
    let (backend_login, provision) = (broker.backend(), broker.provision());
    let stop = CancellationToken::new();
    let seed = format!("t-{}", uuid::Uuid::new_v4().simple());
    let hw = node_sim::firmware::hardware_id(&seed, 0);
    // The provision login works for this client id only.
    broker
        .dynsec(vec![
            json!({"command": "setClientId", "username": provision.user, "clientid": hw}),
        ])
        .await;
    let other = MqttConnection::start(
        login(&broker.url(), &provision.user, &provision.pass),
        None,
        stop.clone(),
    )
    .unwrap();
    assert!(
        other.wait_connected(Duration::from_secs(2)).await.is_err(),
        "the provision login with another client id is refused"
    );

    // The backend: answers time requests and watches everything.
    let (tx, mut seen) = mpsc::channel(1000);
    let backend = MqttConnection::start(
        login(&broker.url(), &backend_login.user, &backend_login.pass),
        Some(tx),
        stop.clone(),
    )
    .unwrap();
    backend.subscribe("hydro/#", QoS::AtLeastOnce).unwrap();
    backend.wait_connected(WAIT).await.unwrap();

    let sim = SimSettings {
        mode: SimMode::Firmware,
        zones: 1,
        nodes: 1,
        telemetry_interval_ms: 200,
        heartbeat_interval_ms: 300,
        time_retry_ms: 300,
        hardware_seed: seed.clone(),
        broker_url: Some(broker.url()),
        mqtt_provision_pass: Some(SecretString::from(provision.pass.clone())),
        ..SimSettings::default()
    };
    let app = App::build(sim, settings(&[])).await.expect("app builds");
    let node = app.firmware_nodes()[0].clone();
    assert_eq!(node.hardware_id(), hw);
    tokio::spawn(app.run_until_stopped(stop.clone()));

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
    let config = json!({
        "node_id": "nd-fw-1", "version": 3, "type": "ph", "gh_uid": "gh-1", "zone_uid": "zn-1",
        "channels": [
            {"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "unit": "pH", "poll_interval_ms": 3000},
            {"name": "pump_acid", "type": "ACTUATOR", "actuator_type": "PUMP"}
        ],
        "wifi": {"configured": true},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 30,
                 "username": "nd-fw-1", "password": NODE_PASS, "user": "nd-fw-1", "pass": NODE_PASS},
        "node_secret": "nd-fw-1-secret-of-at-least-32-characters"
    });
    backend
        .publish(&format!("{temp}/config"), config.to_string(), false)
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
