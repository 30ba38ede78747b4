//! The store statements broker-registry's list, health monitor and API use,
//! against a real database: adding and changing brokers, the list with node
//! counts (role and status read back as enums), a sample's writes, the
//! samples and status changes as the API shows them (every column), the
//! assignments by uid, the OFFLINE bound nodes and the uids of a plan.

use common::placement::balance::{Move, Role};
use common::placement::broker_status::{self, BrokerStatus, Writer};
use common::store::broker_health_samples::{self, NewSample};
use common::store::brokers::{self, Measured};
use common::store::{broker_status_changes, node_broker_assignments, nodes};
use serde_json::{Value, json};
use testkit::TestDb;

/// The names of `row`'s fields, sorted.
fn columns(row: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Brokers b1 and b2; nodes 1 (`nd-b`) and 2 (`nd-a`) on b1, 3 (`nd-c`) on
/// b2 unconfirmed; node 1 OFFLINE and bound, node 3 OFFLINE and unbound.
async fn setup() -> TestDb {
    let db = TestDb::new().await;
    let pool = &db.pool;
    assert!(
        brokers::insert(pool, "b1", "mqtt://b1:1883", Role::Primary)
            .await
            .unwrap()
    );
    assert!(
        brokers::insert(pool, "b2", "mqtt://b2:1883", Role::Standby)
            .await
            .unwrap()
    );
    sqlx::raw_sql(
        "INSERT INTO nodes (id, uid, status) VALUES
             (1, 'nd-b', 'OFFLINE'), (2, 'nd-a', 'ONLINE'), (3, 'nd-c', 'OFFLINE');
         UPDATE nodes SET lifecycle = 'ASSIGNED' WHERE id IN (1, 2);",
    )
    .execute(pool)
    .await
    .unwrap();
    let moves = [(1, "b1"), (2, "b1"), (3, "b2")].map(|(node_id, to)| Move {
        node_id,
        from: None,
        to: to.to_owned(),
    });
    node_broker_assignments::record_moves(pool, &moves, "static")
        .await
        .unwrap();
    sqlx::raw_sql("UPDATE node_broker_assignments SET confirmed_at = now() WHERE node_id <> 3")
        .execute(pool)
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn brokers_are_added_changed_and_listed_with_their_nodes() {
    let db = setup().await;
    let pool = &db.pool;
    // The id or the URL taken: nothing added.
    assert!(
        !brokers::insert(pool, "b1", "mqtt://other:1883", Role::Primary)
            .await
            .unwrap()
    );
    assert!(
        !brokers::insert(pool, "b3", "mqtt://b1:1883", Role::Primary)
            .await
            .unwrap()
    );
    assert!(
        brokers::update(pool, "b2", None, Some(true), Some(Role::Dedicated))
            .await
            .unwrap()
    );
    assert!(
        !brokers::update(pool, "nope", Some(false), None, None)
            .await
            .unwrap()
    );

    let list = brokers::overview(pool).await.unwrap();
    let ids: Vec<&str> = list.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["b1", "b2"]);
    let (b1, b2) = (&list[0], &list[1]);
    assert_eq!(
        (b1.role, b1.status, b1.enabled, b1.draining),
        (Role::Primary, BrokerStatus::Good, true, false)
    );
    assert_eq!((b1.nodes, b1.unconfirmed), (2, 0));
    assert_eq!(
        (b2.role, b2.draining, b2.enabled),
        (Role::Dedicated, true, true)
    );
    assert_eq!((b2.nodes, b2.unconfirmed), (1, 1));
    // The API shows the enums as their SQL text.
    let shown = serde_json::to_value(b2).unwrap();
    assert_eq!(
        (&shown["role"], &shown["status"]),
        (&json!("dedicated"), &json!("GOOD"))
    );
    assert_eq!(
        columns(&shown),
        [
            "connections",
            "draining",
            "enabled",
            "id",
            "last_seen_at",
            "latency_ms",
            "load_index",
            "msgs_per_sec",
            "nodes",
            "role",
            "status",
            "unconfirmed",
            "url"
        ]
    );
}

#[tokio::test]
async fn a_sample_is_written_and_shown_with_every_column() {
    let db = setup().await;
    let pool = &db.pool;
    let sample = |n: i32| NewSample {
        broker_id: "b1",
        probe_ok: n > 0,
        latency_ms: (n > 0).then_some(f64::from(n)),
        connections: Some(n),
        msgs_per_sec: 1.5,
        retained: None,
        uptime_sec: Some(60),
        disconnects: 0,
        load_index: 0.25,
        status: BrokerStatus::Degraded,
    };
    for n in [3, 0, 5] {
        broker_health_samples::insert(pool, &sample(n))
            .await
            .unwrap();
    }
    let shown = broker_health_samples::latest_json(pool, "b1", 2)
        .await
        .unwrap();
    assert_eq!(shown.len(), 2);
    assert_eq!(
        columns(&shown[0]),
        [
            "broker_id",
            "connections",
            "disconnects",
            "latency_ms",
            "load_index",
            "msgs_per_sec",
            "probe_ok",
            "retained",
            "sampled_at",
            "status",
            "uptime_sec"
        ]
    );
    assert_eq!(shown[0]["status"], "DEGRADED");
    assert_eq!(shown[0]["retained"], Value::Null);
    assert!(
        broker_health_samples::latest_json(pool, "b2", 20)
            .await
            .unwrap()
            .is_empty()
    );

    // A failed probe keeps the last latency and sighting.
    let measured = |latency_ms| Measured {
        load_index: 0.5,
        connections: 7,
        msgs_per_sec: 2.0,
        latency_ms,
    };
    let status = brokers::record_figures(pool, "b1", &measured(Some(12.0)))
        .await
        .unwrap();
    assert_eq!(status, BrokerStatus::Good);
    let seen = brokers::overview(pool).await.unwrap()[0].last_seen_at;
    assert!(seen.is_some());
    brokers::record_figures(pool, "b1", &measured(None))
        .await
        .unwrap();
    let b1 = brokers::overview(pool).await.unwrap().remove(0);
    assert_eq!(
        (
            b1.latency_ms,
            b1.last_seen_at,
            b1.connections,
            b1.load_index
        ),
        (Some(12.0), seen, 7, 0.5)
    );
}

#[tokio::test]
async fn status_changes_are_shown_newest_first_with_every_column() {
    let db = setup().await;
    let pool = &db.pool;
    for to in [BrokerStatus::Degraded, BrokerStatus::Critical] {
        broker_status::set_status(pool, "b1", to, Writer::Monitor, "test")
            .await
            .unwrap();
    }
    let all = broker_status_changes::latest_json(pool, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (&all[0]["from_status"], &all[0]["to_status"]),
        (&json!("DEGRADED"), &json!("CRITICAL"))
    );
    assert_eq!(
        columns(&all[0]),
        [
            "broker_id",
            "changed_at",
            "from_status",
            "id",
            "reason",
            "to_status"
        ]
    );
    assert_eq!(
        broker_status_changes::latest_json(pool, 1).await.unwrap(),
        all[..1]
    );
}

#[tokio::test]
async fn assignments_nodes_offline_and_plan_uids() {
    let db = setup().await;
    let pool = &db.pool;
    let uids = |rows: Vec<node_broker_assignments::Assignment>| -> Vec<String> {
        rows.into_iter().map(|a| a.node_uid).collect()
    };
    let by_uid = node_broker_assignments::by_uid(pool, None).await.unwrap();
    assert_eq!(uids(by_uid), ["nd-a", "nd-b", "nd-c"]);
    let on_b1 = node_broker_assignments::by_uid(pool, Some("b1"))
        .await
        .unwrap();
    assert_eq!(uids(on_b1), ["nd-a", "nd-b"]);
    let by_id = node_broker_assignments::select(pool, None).await.unwrap();
    assert_eq!(uids(by_id), ["nd-b", "nd-a", "nd-c"]);
    let some = node_broker_assignments::select(pool, Some(&[3, 2]))
        .await
        .unwrap();
    assert_eq!(uids(some), ["nd-a", "nd-c"]);

    // Node 3 is OFFLINE but in no zone: nobody's alarm.
    assert_eq!(nodes::offline_bound(pool).await.unwrap(), 1);
    let mut refs = nodes::refs(pool, &[3, 1, 99]).await.unwrap();
    refs.sort_by_key(|r| r.id);
    let refs: Vec<(i64, &str)> = refs.iter().map(|r| (r.id, r.uid.as_str())).collect();
    assert_eq!(refs, [(1, "nd-b"), (3, "nd-c")]);
}
