//! Where commands go (issue 10): to the broker the node is observed on,
//! never to one it was only assigned to; a command that waits for a move is
//! signed at the moment it is published, and a command published again is
//! signed again.

mod helpers;

use std::time::Duration;

use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use helpers::{SECRET, TOKEN, seed, settings_for};
use mqtt_bridge::App;
use proto::payloads::Command;
use proto::signing;
use serde_json::{Value, json};
use testkit::{Service, TestBroker, TestDb, eventually};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);
const COMMANDS: &str = "hydro/+/+/+/+/command";

/// A bridge connected to two brokers (`mqtt1` the default, `mqtt2`).
struct TwoBrokers {
    bridge: Service,
    db: TestDb,
    brokers: [TestBroker; 2],
}

async fn spawn_two() -> TwoBrokers {
    common::runtime::logging::init_for_tests();
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let brokers = [TestBroker::start().await, TestBroker::start().await];
    let registered = [
        ("mqtt1".to_owned(), brokers[0].url()),
        ("mqtt2".to_owned(), brokers[1].url()),
    ];
    testkit::register_brokers(&db.pool, &registered).await;
    let (settings, bridge) = settings_for(&db, brokers[0].port, &[]);
    let app = App::build(settings, bridge).await.expect("app builds");
    for id in ["mqtt1", "mqtt2"] {
        app.brokers()
            .get(id)
            .expect("connected to every broker of the table")
            .wait_connected(WAIT)
            .await
            .expect("bridge connects");
    }
    TwoBrokers {
        bridge: Service::start(app.port(), |stop| app.run_until_stopped(stop)),
        db,
        brokers,
    }
}

impl TwoBrokers {
    /// A node-side client on broker `i` subscribed to `filter`.
    async fn node_on(&self, i: usize, filter: &str) -> (MqttConnection, mpsc::Receiver<Inbound>) {
        let url = self.brokers[i].url();
        let config = testkit::login(MqttConfig::new("n", &url, &format!("node-{i}")));
        let (c, rx) = testkit::client::listen(config, &[filter], WAIT, &self.bridge.stop).await;
        testkit::client::settle(&c).await;
        (c, rx)
    }

    async fn command(&self, node: &str) -> (u16, Value) {
        command(&self.bridge, node).await
    }

    async fn sql(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.db.pool).await.unwrap();
    }
}

/// POSTs a `run_pump` of `node`'s `pump_acid` to `bridge` (when awaited,
/// here or in a task of its own).
fn command(bridge: &Service, node: &str) -> impl Future<Output = (u16, Value)> + Send + 'static {
    let path = format!("/bridge/nodes/{node}/commands");
    let body = json!({"cmd": "run_pump", "channel": "pump_acid", "params": {"ml": 2.5}});
    let request = bridge.request(reqwest::Method::POST, &path);
    testkit::http::call(request, Some(TOKEN), Some(body.to_string()))
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Command {
    let m = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a command arrives")
        .unwrap();
    Command::decode(&m.payload).expect("a contract command")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_where_the_node_is_observed_not_where_it_is_assigned() {
    let t = spawn_two().await;
    // nd-ph-1: assigned (and once confirmed) on mqtt1, seen on mqtt2 since;
    // nd-ph-2: no assignment (the default would be mqtt1), seen on mqtt2.
    t.sql(
        "UPDATE nodes SET move_via = 'node_config', observed_broker_id = 'mqtt2', observed_at = now() \
           WHERE uid IN ('nd-ph-1', 'nd-ph-2');
         INSERT INTO node_broker_assignments (node_id, broker_id, strategy, config_ts, assigned_at, confirmed_at) \
           SELECT id, 'mqtt1', 'static', 1, now() - interval '1 hour', now() - interval '1 hour' FROM nodes WHERE uid = 'nd-ph-1';",
    )
    .await;
    let (_n1, mut on_1) = t.node_on(0, COMMANDS).await;
    let (_n2, mut on_2) = t.node_on(1, COMMANDS).await;
    for node in ["nd-ph-1", "nd-ph-2"] {
        let (code, body) = t.command(node).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["data"]["broker_id"], "mqtt2", "{body}");
        let command = next(&mut on_2).await;
        assert_eq!(command.cmd_id, body["data"]["command_id"]);
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(1), on_1.recv())
            .await
            .is_err(),
        "nothing went to the broker the node has not joined"
    );
    // A confirmation newer than the observation is where it is now.
    t.sql(
        "UPDATE node_broker_assignments SET confirmed_at = now() + interval '1 second' \
           WHERE node_id = (SELECT id FROM nodes WHERE uid = 'nd-ph-1')",
    )
    .await;
    tokio::time::sleep(mqtt_bridge_cache_ttl()).await;
    let (code, body) = t.command("nd-ph-1").await;
    assert_eq!(
        (code, &body["data"]["broker_id"]),
        (200, &json!("mqtt1")),
        "{body}"
    );
    next(&mut on_1).await;
}

/// Longer than the bridge's target cache keeps a lookup. Expiry is by the
/// clock alone, so waiting it out is certain, not a guess at another task's
/// progress; taken from the bridge so the two cannot drift apart.
fn mqtt_bridge_cache_ttl() -> Duration {
    mqtt_bridge::target_cache::TTL + Duration::from_millis(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waiting_for_a_move_is_signed_when_published_and_signed_again_when_resent() {
    let t = spawn_two().await;
    // nd-ph-1 is moving to mqtt1 (not confirmed); it is on mqtt2 in truth,
    // where nobody has seen it yet. Nobody listens on mqtt1.
    t.sql(
        "UPDATE nodes SET move_via = 'config_update' WHERE uid = 'nd-ph-1';
         INSERT INTO node_broker_assignments (node_id, broker_id, strategy, config_ts) \
           SELECT id, 'mqtt1', 'dynamic', 1 FROM nodes WHERE uid = 'nd-ph-1';",
    )
    .await;
    let topic = "hydro/gh-t/zn-a/nd-ph-1/pump_acid/command";
    let (_n2, mut on_2) = t.node_on(1, topic).await;
    let requested = chrono::Utc::now().timestamp();
    let request = tokio::spawn(command(&t.bridge, "nd-ph-1"));
    // The command waits; 6 s later the node's move is confirmed on mqtt2.
    tokio::time::sleep(Duration::from_secs(6)).await;
    t.sql(
        "UPDATE node_broker_assignments SET broker_id = 'mqtt2', previous_broker_id = 'mqtt1', confirmed_at = now() \
           WHERE node_id = (SELECT id FROM nodes WHERE uid = 'nd-ph-1')",
    )
    .await;
    let first = next(&mut on_2).await;
    let received = chrono::Utc::now().timestamp();
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["broker_id"], "mqtt2");
    assert!(
        first.ts >= requested + 5,
        "ts {} is the publish moment, not the request's ({requested})",
        first.ts
    );
    assert!(first.ts <= received + 1);
    assert!(signing::verify(SECRET.as_bytes(), &first));

    // mqtt2 dies before the node answered; the node shows up on mqtt1: the
    // command goes out again there, signed anew.
    let (_n1, mut on_1) = t.node_on(0, topic).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    t.sql(
        "UPDATE brokers SET status = 'OFFLINE' WHERE id = 'mqtt2';
         UPDATE nodes SET observed_broker_id = 'mqtt1', observed_at = now() + interval '1 second' WHERE uid = 'nd-ph-1';",
    )
    .await;
    let again = next(&mut on_1).await;
    assert_eq!(again.cmd_id, first.cmd_id);
    assert!(again.ts > first.ts, "re-signed with a fresh ts");
    assert_ne!(again.sig, first.sig);
    assert!(signing::verify(SECRET.as_bytes(), &again));
    let moved = eventually(WAIT, || async {
        let broker: String = sqlx::query_scalar("SELECT broker_id FROM commands WHERE cmd_id = $1")
            .bind(&first.cmd_id)
            .fetch_one(&t.db.pool)
            .await
            .ok()?;
        (broker == "mqtt1").then_some(())
    })
    .await;
    assert!(moved.is_some(), "the row names the broker it went out on");
}
