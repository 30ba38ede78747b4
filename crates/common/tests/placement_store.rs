//! The store statements of the move protocol against a real database: the
//! bulk move write (UNNEST over arrays with NULLs), confirmations, the
//! observation sweeps, broker status changes and the planner's snapshot,
//! with the statuses and move means read back as enums.

use std::time::Duration;

use common::placement::balance::{Move, MoveVia, Role};
use common::placement::broker_status::{self, BrokerStatus, Writer};
use common::placement::{assignments, observed};
use common::store::node_broker_assignments;
use sqlx::PgPool;
use testkit::TestDb;
use testkit::db::count;

/// Brokers b1 (primary) and b2 (dedicated); nodes 1 (config_update) and 2
/// (node_config, observed on b2), neither assigned.
async fn setup() -> TestDb {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "INSERT INTO brokers (id, url, role) VALUES ('b1', 'mqtt://b1:1883', 'primary'), \
                                                    ('b2', 'mqtt://b2:1883', 'dedicated');
         INSERT INTO nodes (id, uid, move_via, observed_broker_id, observed_at) VALUES
             (1, 'nd-1', 'config_update', NULL, NULL), (2, 'nd-2', 'node_config', 'b2', now());",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

fn mv(node_id: i64, from: Option<&str>, to: &str) -> Move {
    Move {
        node_id,
        from: from.map(str::to_owned),
        to: to.to_owned(),
    }
}

async fn config_ts(pool: &PgPool, node_id: i64) -> i64 {
    sqlx::query_scalar("SELECT config_ts FROM node_broker_assignments WHERE node_id = $1")
        .bind(node_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn moves_are_written_only_from_where_the_node_is() {
    let db = setup().await;
    let pool = &db.pool;
    // From nowhere: creates the row of an existing node only.
    let written =
        assignments::record_moves(pool, &[mv(1, None, "b1"), mv(9, None, "b1")], "static")
            .await
            .unwrap();
    assert_eq!(written.len(), 1);
    let a = &written[0];
    assert_eq!((a.node_uid.as_str(), a.broker_id.as_str()), ("nd-1", "b1"));
    assert_eq!(
        (a.strategy.as_str(), a.move_via),
        ("static", MoveVia::ConfigUpdate)
    );
    assert!(a.confirmed_at.is_none() && a.previous_broker_id.is_none());
    let first_ts = config_ts(pool, 1).await;
    assert!(first_ts > 0);
    // A plan made from another broker, or to where it is, changes nothing.
    for stale in [
        mv(1, Some("b2"), "b1"),
        mv(1, Some("b1"), "b1"),
        mv(1, None, "b2"),
    ] {
        let written = assignments::record_moves(pool, std::slice::from_ref(&stale), "dynamic")
            .await
            .unwrap();
        assert!(written.is_empty(), "{stale:?}");
    }
    let written = assignments::record_moves(pool, &[mv(1, Some("b1"), "b2")], "failover")
        .await
        .unwrap();
    assert_eq!(written[0].broker_id, "b2");
    assert_eq!(written[0].previous_broker_id.as_deref(), Some("b1"));
    assert!(config_ts(pool, 1).await > first_ts, "config_ts grows");
    assert_eq!(assignments::all(pool).await.unwrap().len(), 1);

    // A replayed status older than the config does not confirm; a live one does, once.
    // (broker, live, config ts, confirms)
    for (broker, live, ts, confirms) in [
        ("b2", false, first_ts, false),
        ("b1", true, 0, false),
        ("b2", true, 0, true),
        ("b2", true, 0, false),
    ] {
        let confirmed = assignments::confirm(pool, "nd-1", broker, live, ts)
            .await
            .unwrap();
        assert_eq!(confirmed, confirms, "{broker} live={live} ts={ts}");
    }
    assert_eq!(
        node_broker_assignments::brokers_with_confirmed(pool)
            .await
            .unwrap(),
        ["b2"]
    );
    assert_eq!(
        node_broker_assignments::forget(pool, &["nd-1".into()])
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn observed_nodes_are_adopted_followed_and_stranded() {
    let db = setup().await;
    let pool = &db.pool;
    let swept = observed::follow_observations(pool, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((swept.adopted, swept.followed), (1, 0), "{swept:?}");
    let all = assignments::all(pool).await.unwrap();
    assert_eq!(
        (all[0].node_uid.as_str(), all[0].broker_id.as_str()),
        ("nd-2", "b2")
    );
    assert_eq!(
        (all[0].strategy.as_str(), all[0].move_via),
        ("observed", MoveVia::NodeConfig)
    );
    assert!(all[0].confirmed_at.is_some());
    // Seen later on b1: the assignment follows it there.
    sqlx::query("UPDATE nodes SET observed_broker_id = 'b1', observed_at = now() + interval '1 second' WHERE id = 2")
        .execute(pool)
        .await
        .unwrap();
    let swept = observed::follow_observations(pool, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((swept.adopted, swept.followed), (0, 1), "{swept:?}");

    assert!(observed::stranded(pool, None).await.unwrap().is_empty());
    broker_status::set_status(pool, "b1", BrokerStatus::Offline, Writer::Failover, "test")
        .await
        .unwrap();
    let stranded = observed::stranded(pool, Some("b1")).await.unwrap();
    assert_eq!(stranded.len(), 1);
    assert_eq!(
        (stranded[0].node_uid.as_str(), stranded[0].move_via),
        ("nd-2", MoveVia::NodeConfig)
    );
    assert!(
        observed::stranded(pool, Some("b2"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn status_changes_are_recorded_and_the_snapshot_reads_enums() {
    let db = setup().await;
    let pool = &db.pool;
    let set = |to, writer| broker_status::set_status(pool, "b1", to, writer, "test");
    // (to, by whom, the status it changed from: None when nothing changed)
    for (to, writer, from, what) in [
        (
            BrokerStatus::Degraded,
            Writer::Monitor,
            Some(BrokerStatus::Good),
            "a change",
        ),
        (BrokerStatus::Degraded, Writer::Monitor, None, "no change"),
        (
            BrokerStatus::Offline,
            Writer::Monitor,
            None,
            "monitor never",
        ),
        (
            BrokerStatus::Offline,
            Writer::Failover,
            Some(BrokerStatus::Degraded),
            "failover",
        ),
        (
            BrokerStatus::Good,
            Writer::Monitor,
            None,
            "not from OFFLINE",
        ),
    ] {
        assert_eq!(set(to, writer).await.unwrap(), from, "{what}");
    }
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM broker_status_changes WHERE broker_id = 'b1' AND reason = 'test'"
        )
        .await,
        2
    );

    let (brokers, nodes) = assignments::snapshot(pool, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(brokers.len(), 2);
    assert_eq!(
        (brokers[0].role, brokers[0].status),
        (Role::Primary, BrokerStatus::Offline)
    );
    assert_eq!(
        (brokers[1].role, brokers[1].status),
        (Role::Dedicated, BrokerStatus::Good)
    );
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (nodes[0].via, nodes[0].reachable),
        (MoveVia::ConfigUpdate, false)
    );
    assert_eq!(
        (nodes[1].via, nodes[1].observed.as_deref()),
        (MoveVia::NodeConfig, Some("b2"))
    );
    assert!(nodes[1].reachable && !nodes[1].critical && !nodes[1].cooling);

    let reachable = assignments::reachable_brokers(pool).await.unwrap();
    assert_eq!(
        reachable.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        ["b2"]
    );
    assert_eq!(assignments::broker_urls(pool).await.unwrap().len(), 2);
}
