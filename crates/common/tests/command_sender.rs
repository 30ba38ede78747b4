//! The shared send path against a real database and broker: one row the
//! database refuses fails only its own request, never the others that share
//! its group-committed INSERT.

use std::time::Duration;

use common::commands::status_writer::StatusWriter;
use common::commands::{CommandSender, NewCommand, SendOutcome, Source, find_target};
use common::mqtt::pool::BrokerPool;
use common::settings::Settings;
use serde_json::{Map, Value, json};
use testkit::{TestBroker, TestDb, env_vars};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_row_the_database_refuses_fails_only_its_own_send() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "INSERT INTO greenhouses (uid, name) VALUES ('gh-t', 'Test');
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-a', id, 'A' FROM greenhouses;
         INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-1', id, 'ph' FROM zones;
         INSERT INTO node_channels (node_id, channel, type) SELECT id, 'pump_acid', 'actuator' FROM nodes;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let broker = TestBroker::start().await;
    let settings = Settings::from_vars(env_vars(&broker.env())).unwrap();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let brokers = BrokerPool::connect(&settings, &db.pool, "test", None, &stop)
        .await
        .unwrap();
    brokers
        .default_broker()
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let sender = CommandSender::new(
        db.pool.clone(),
        brokers,
        settings.node_default_secret.clone(),
        StatusWriter::spawn(db.pool.clone()),
    );
    let target = find_target(&db.pool, "nd-1", "pump_acid")
        .await
        .unwrap()
        .unwrap();

    // 40 valid sends and 4 whose params PostgreSQL cannot store (a NUL in a
    // jsonb string or key), all at once: they share INSERT statements.
    let command = |i: usize| {
        let params: Value = match i % 11 {
            0 => json!({"note": format!("bad\u{0}{i}")}),
            _ => json!({"duration_ms": 100 + i}),
        };
        let params: Value = if i == 22 {
            json!({"nested": {"k\u{0}": 1}})
        } else {
            params
        };
        NewCommand {
            cmd_id: format!("c{i:03}"),
            cmd: "run_pump".into(),
            params: params.as_object().cloned().unwrap_or_else(Map::new),
            source: Source::Api,
            request_hash: None,
        }
    };
    let results = futures::future::join_all((0..44).map(|i| {
        let (sender, target) = (sender.clone(), target.clone());
        async move { (i, sender.send(&target, command(i)).await) }
    }))
    .await;
    for (i, result) in &results {
        if i.is_multiple_of(11) {
            assert!(result.is_err(), "c{i:03} with a NUL must fail: {result:?}");
        } else {
            assert!(
                matches!(result, Ok(SendOutcome::Sent { .. })),
                "c{i:03}: {result:?}"
            );
        }
    }
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT cmd_id, status FROM commands ORDER BY cmd_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 40, "every valid command once, no bad one");
    assert!(stored.iter().all(|(id, status)| {
        let i: usize = id[1..].parse().unwrap();
        !i.is_multiple_of(11) && status == "SENT"
    }));
}
