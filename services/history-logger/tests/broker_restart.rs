//! The issue's scenario end to end: node-sim nodes on three brokers, the
//! registry, failover and history-logger. A broker dies, its nodes move, and
//! it comes back with the retained last wills (and old ONLINE statuses) of
//! the nodes that left it: every live node stays ONLINE, observed where it is.
//!
//! The cluster is failover's test cluster (services/failover/tests/helpers),
//! shared rather than copied.

#[path = "../../failover/tests/helpers/mod.rs"]
mod cluster;

use std::time::Duration;

use chrono::Utc;
use cluster::{Cluster, Options, WAIT};
use common::QoS;
use common::mqtt::{MqttConfig, MqttConnection};
use proto::topics::{TIME_REQUEST, TIME_RESPONSE};
use testkit::eventually;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Waits until `sql` counts `want`; the last count seen.
async fn wait_count(c: &Cluster, sql: &str, want: i64) -> i64 {
    testkit::wait_count(c.pool(), sql, want).await
}

/// `node_status_ignored_total` of this process (this file's only test).
fn ignored_so_far() -> f64 {
    let metrics = common::runtime::http::metrics_handle().render();
    testkit::metric_sum(&metrics, common::metrics::NODE_STATUS_IGNORED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_back_with_old_last_wills_takes_no_live_node_offline() {
    let mut c = Cluster::settled(Options {
        history: true,
        ..Options::default()
    })
    .await;
    let nodes = c.sim_nodes.len() as i64;
    // Every node ONLINE and observed on the broker it is assigned to.
    let where_assigned = "SELECT count(*) FROM nodes n JOIN node_broker_assignments a ON a.node_id = n.id \
                          WHERE n.observed_broker_id = a.broker_id AND n.status = 'ONLINE'";
    assert_eq!(wait_count(&c, where_assigned, nodes).await, nodes);
    let victim = "mqtt2";
    let moved = c.nodes_on(victim).await;
    assert!(
        !moved.is_empty(),
        "static assignment gives every broker nodes"
    );
    let before_kill = Utc::now().timestamp();
    // Moving each node from its first broker to its assigned one may have
    // cost it a last will on the first before its ONLINE on the second was
    // seen; those are not this test's business, what follows is.
    let offline_events =
        "SELECT payload_json, created_at FROM zone_events WHERE type = 'NODE_OFFLINE' ORDER BY id";
    let settling: Vec<(serde_json::Value, chrono::DateTime<Utc>)> = sqlx::query_as(offline_events)
        .fetch_all(c.pool())
        .await
        .unwrap();

    c.broker_mut(victim).kill();
    let gone = format!("SELECT count(*) FROM nodes WHERE observed_broker_id = '{victim}'");
    c.until("the victim's nodes moved", || async {
        let on_victim = c.nodes_on(victim).await.is_empty();
        let observed = testkit::count(c.pool(), &gone).await == 0;
        (on_victim && observed).then_some(())
    })
    .await;
    assert_eq!(wait_count(&c, where_assigned, nodes).await, nodes);

    // The broker comes back, and history-logger with it (it answers a time
    // request there).
    let ignored_before = ignored_so_far();
    c.broker_mut(victim).resume().await;
    let stop = CancellationToken::new();
    let (tx, mut answers) = mpsc::channel(64);
    let on_victim = MqttConnection::start(
        testkit::login(MqttConfig::new(victim, &c.url_of(victim), "test-replay")),
        Some(tx),
        stop.clone(),
    )
    .expect("client");
    on_victim
        .wait_connected(WAIT)
        .await
        .expect("the victim is back");
    on_victim
        .subscribe(TIME_RESPONSE, QoS::AtLeastOnce)
        .expect("subscribe");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut back = None;
    while back.is_none() && tokio::time::Instant::now() < deadline {
        let asked = on_victim
            .publish(TIME_REQUEST, r#"{"message_type":"time_request"}"#, false)
            .await;
        if asked.is_ok() {
            back = tokio::time::timeout(Duration::from_secs(1), answers.recv())
                .await
                .ok()
                .flatten();
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(back.is_some(), "history-logger answers on the victim again");

    // Then what the broker held for the nodes that left: their last wills
    // and their old ONLINE statuses, retained. (Mosquitto replays no retained
    // message to a shared subscription; a broker that does delivers them as
    // these are delivered.)
    let zone_of: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.uid, z.uid, g.uid FROM nodes n JOIN zones z ON z.id = n.zone_id \
           JOIN greenhouses g ON g.id = z.greenhouse_id WHERE n.uid = ANY($1)",
    )
    .bind(&moved)
    .fetch_all(c.pool())
    .await
    .unwrap();
    for (node, zone, gh) in &zone_of {
        let base = format!("hydro/{gh}/{zone}/{node}");
        let old = format!(r#"{{"status":"ONLINE","ts":{}}}"#, before_kill - 60);
        on_victim
            .publish(&format!("{base}/status"), old, true)
            .await
            .unwrap();
        on_victim
            .publish(&format!("{base}/lwt"), "offline", true)
            .await
            .unwrap();
    }
    // Each was seen, and ignored.
    let want = 2.0 * moved.len() as f64;
    let seen = eventually(WAIT, || async {
        (ignored_so_far() - ignored_before >= want).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "{} ignored for {} moved nodes",
        ignored_so_far() - ignored_before,
        moved.len()
    );
    // Time for anything else the writer was going to apply.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let offline = "SELECT count(*) FROM nodes WHERE status <> 'ONLINE'";
    assert_eq!(testkit::count(c.pool(), offline).await, 0);
    assert_eq!(testkit::count(c.pool(), &gone).await, 0);
    assert_eq!(
        testkit::count(
            c.pool(),
            "SELECT count(*) FROM alerts WHERE type = 'node_offline' AND status = 'ACTIVE'"
        )
        .await,
        0
    );
    assert_eq!(wait_count(&c, where_assigned, nodes).await, nodes);
    // Not merely ONLINE again by their next reading: never taken down at all.
    let after: Vec<(serde_json::Value, chrono::DateTime<Utc>)> = sqlx::query_as(offline_events)
        .fetch_all(c.pool())
        .await
        .unwrap();
    assert_eq!(after, settling, "no node went OFFLINE (moved: {moved:?})");
    stop.cancel();
}
