//! The command path's store against a real database: the `commands` rows
//! (insert, duplicates, statuses read back as [`CommandStatus`], the sweep)
//! and the route a target is read with, which must be the route a waiting
//! command reads again.

use std::time::Duration;

use common::commands::status::CommandStatus;
use common::commands::{Source, find_target};
use common::store::commands::{self, NewRow};
use common::store::nodes;
use serde_json::json;
use testkit::TestDb;

async fn seed(db: &TestDb) {
    sqlx::raw_sql(
        "INSERT INTO greenhouses (uid, name) VALUES ('gh-t', 'Test');
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-a', id, 'A' FROM greenhouses;
         INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-1', id, 'ph' FROM zones;
         INSERT INTO node_channels (node_id, channel, type) SELECT id, 'pump_acid', 'actuator' FROM nodes;
         INSERT INTO brokers (id, url) VALUES ('b1', 'mqtt://b1:1883'), ('b2', 'mqtt://b2:1883');",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

fn row(cmd_id: &str, node_id: i64) -> NewRow {
    NewRow {
        cmd_id: cmd_id.into(),
        zone_id: 1,
        node_id,
        channel: "pump_acid".into(),
        cmd: "run_pump".into(),
        params: json!({"duration_ms": 100}),
        source: Source::Api,
        broker_id: "b1".into(),
        request_hash: Some(format!("hash-{cmd_id}")),
    }
}

#[tokio::test]
async fn rows_are_written_once_and_read_back_with_their_status() {
    let db = TestDb::new().await;
    seed(&db).await;
    let node = find_target(&db.pool, "nd-1", "pump_acid")
        .await
        .unwrap()
        .unwrap();

    // A cmd_id repeated within a batch, and one already stored, are not new.
    let new = commands::insert(
        &db.pool,
        &[
            row("c1", node.node_id),
            row("c2", node.node_id),
            row("c1", node.node_id),
        ],
    )
    .await
    .unwrap();
    assert_eq!(new, [true, true, false]);
    let again = commands::insert(&db.pool, &[row("c2", node.node_id)])
        .await
        .unwrap();
    assert_eq!(again, [false]);

    let state = commands::replay_state(&db.pool, "c1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, CommandStatus::Queued);
    assert_eq!(state.request_hash.as_deref(), Some("hash-c1"));
    assert_eq!(state.node_uid.as_deref(), Some("nd-1"));
    assert!(
        commands::replay_state(&db.pool, "nope")
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        commands::mark_send_failed(&db.pool, "c1", "broker b1: down")
            .await
            .unwrap()
    );
    assert!(
        !commands::mark_send_failed(&db.pool, "c1", "again")
            .await
            .unwrap(),
        "already final"
    );
    commands::set_broker(&db.pool, "c1", "b2").await.unwrap();
    let detail = commands::detail(&db.pool, "c1").await.unwrap().unwrap();
    assert_eq!(detail.status, CommandStatus::SendFailed);
    assert_eq!(detail.error_message.as_deref(), Some("broker b1: down"));
    assert_eq!(detail.broker_id.as_deref(), Some("b2"));
    assert_eq!(
        (detail.zone_uid.as_deref(), detail.node_uid.as_deref()),
        (Some("zn-a"), Some("nd-1"))
    );

    let origins = commands::origins(&db.pool, &["c2", "nope"]).await.unwrap();
    assert_eq!(origins.len(), 1);
    assert_eq!(origins[0].greenhouse_uid.as_deref(), Some("gh-t"));

    // Only the open command times out.
    let timed_out = commands::time_out_overdue(&db.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(timed_out, ["c2"]);
    let detail = commands::detail(&db.pool, "c2").await.unwrap().unwrap();
    assert_eq!(detail.status, CommandStatus::Timeout);
}

/// Runs `sql` with `$1` = `node_id`.
async fn change(db: &TestDb, sql: &str, node_id: i64) {
    sqlx::query(sql)
        .bind(node_id)
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_target_is_read_with_the_route_a_waiting_command_reads() {
    let db = TestDb::new().await;
    seed(&db).await;
    let route = |target: Option<common::commands::Target>| target.unwrap().broker_id;
    let node_id = find_target(&db.pool, "nd-1", "pump_acid")
        .await
        .unwrap()
        .unwrap()
        .node_id;
    let both = || async {
        let target = route(find_target(&db.pool, "nd-1", "pump_acid").await.unwrap());
        let now = nodes::route_now(&db.pool, node_id).await.unwrap().unwrap();
        assert_eq!(target, now.broker_id, "one rule for both reads");
        now
    };

    // Nowhere: the default broker.
    assert_eq!(both().await.broker_id, None);
    // Assigned, not confirmed: the assignment.
    change(&db, "INSERT INTO node_broker_assignments (node_id, broker_id, strategy) VALUES ($1, 'b1', 'manual')", node_id).await;
    let now = both().await;
    assert_eq!(
        (now.broker_id.as_deref(), now.confirmed),
        (Some("b1"), false)
    );
    // Observed elsewhere since: where it is observed.
    change(
        &db,
        "UPDATE nodes SET observed_broker_id = 'b2', observed_at = now() WHERE id = $1",
        node_id,
    )
    .await;
    assert_eq!(both().await.broker_id.as_deref(), Some("b2"));
    // The assignment confirmed after that observation: the assignment.
    let confirm = "UPDATE node_broker_assignments SET confirmed_at = now() + interval '1 second' \
                   WHERE node_id = $1";
    change(&db, confirm, node_id).await;
    let now = both().await;
    assert_eq!(
        (now.broker_id.as_deref(), now.confirmed),
        (Some("b1"), true)
    );
}
