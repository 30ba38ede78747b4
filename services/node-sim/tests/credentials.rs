//! Seeded classic nodes log in with their own broker account (username =
//! uid, password = `nodes.mqtt_password`) on a broker with authentication,
//! and check commands with their own secret (`nodes.secret`), not the
//! default one.

mod support;

use std::time::Duration;

use common::settings::DEV_NODE_SECRET;
use node_sim::App;
use serde_json::{Value, json};
use support::{WAIT, new_cmd_id, now_secs, settings, sim_settings};
use testkit::{TestBroker, TestDb, eventually};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_nodes_log_in_as_themselves_and_check_their_own_secret() {
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let mut sim = sim_settings(1, 2);
    sim.seed_db = true;
    sim.broker_url = Some(broker.url());
    let gh = sim.greenhouse.clone();
    let app = App::build(sim, settings(&[("DATABASE_URL", &db.url)]))
        .await
        .expect("app builds");
    let nodes = app.nodes().clone();
    tokio::spawn(app.run_until_stopped(stop.clone()));

    // Anonymous access is off and no account exists yet: nobody gets in.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(nodes.iter().all(|n| !n.is_connected()));

    // The accounts, as device-registry makes them from the database.
    let report = broker.sync_node_accounts(&db.pool).await;
    assert_eq!(report.created, 2, "{report:?}");
    eventually(WAIT, || async {
        nodes.iter().all(|n| n.is_connected()).then_some(())
    })
    .await
    .expect("every node logs in with its own account");

    // Commands signed with the node's own secret run; the default secret's
    // are refused.
    let node = nodes
        .iter()
        .find(|n| n.uid().starts_with("nd-ph"))
        .expect("a ph node");
    let (uid, zone) = (node.uid().to_owned(), node.spec().zone.clone());
    let (secret,): (String,) = sqlx::query_as("SELECT secret FROM nodes WHERE uid = $1")
        .bind(&uid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_ne!(secret, DEV_NODE_SECRET);
    let responses = format!("hydro/{gh}/{zone}/{uid}/+/command_response");
    let (backend, mut rx) =
        testkit::client::listen(broker.backend_config(), &[&responses], WAIT, &stop).await;
    // Once settled its subscription is in place (a fixed pause would only
    // make it likely).
    testkit::client::settle(&backend).await;
    let topic = format!("hydro/{gh}/{zone}/{uid}/pump_acid/command");
    let params = json!({"duration_ms": 100}).as_object().cloned().unwrap();
    let good = new_cmd_id();
    let forged = new_cmd_id();
    for (id, key) in [(&good, secret.as_str()), (&forged, DEV_NODE_SECRET)] {
        let command =
            proto::signing::sign(key.as_bytes(), id, "run_pump", params.clone(), now_secs());
        backend
            .publish(&topic, serde_json::to_vec(&command).unwrap(), false)
            .await
            .unwrap();
    }
    let mut statuses: Vec<(String, String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(statuses.iter().any(|s| s.0 == good && s.1 == "ACK")
        && statuses.iter().any(|s| s.0 == forged))
    {
        let m = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("responses arrive")
            .unwrap();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        statuses.push((
            v["cmd_id"].as_str().unwrap_or_default().to_owned(),
            v["status"].as_str().unwrap_or_default().to_owned(),
            v,
        ));
    }
    let refused = statuses.iter().find(|s| s.0 == forged).unwrap();
    assert_eq!(refused.1, "INVALID", "{:?}", refused.2);
    assert!(
        refused.2.to_string().contains("bad_signature"),
        "{:?}",
        refused.2
    );
    assert!(
        statuses.iter().all(|s| s.0 != good || s.1 != "INVALID"),
        "{statuses:?}"
    );
    stop.cancel();
}
