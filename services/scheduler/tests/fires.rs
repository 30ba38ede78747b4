//! The fire record against real PostgreSQL: one slot, one command id,
//! however many claim it at once; a settled slot is never handed out again.

use chrono::{TimeZone, Utc};
use scheduler::fires;
use scheduler::schedule::Kind;
use testkit::TestDb;

/// A fresh database with zone `zn-f`, and the `kind` slot of that zone at
/// `hour`:00 on 2026-05-01.
async fn slot(kind: Kind, hour: u32) -> (TestDb, fires::SlotKey) {
    let db = TestDb::new().await;
    let zone_id = zone(&db.pool).await;
    let slot = Utc.with_ymd_and_hms(2026, 5, 1, hour, 0, 0).unwrap();
    (db, (zone_id, kind, slot))
}

async fn zone(pool: &sqlx::PgPool) -> i64 {
    testkit::seed_zones(pool, ("gh-f", "F"), &[("zn-f", "F")]).await[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_one_slot_agree_on_one_command_id() {
    let (db, key) = slot(Kind::Irrigation, 8).await;
    let (zone_id, _, slot) = key;
    let claims = futures_join(&db.pool, key).await;
    let first = claims[0].clone().expect("the slot was free");
    assert!(
        claims.iter().all(|c| c.as_deref() == Some(first.as_str())),
        "{claims:?}"
    );

    // Until its command is written the fire is handed out again, same id.
    assert_eq!(
        fires::claim(&db.pool, key, "another").await.unwrap(),
        Some(first.clone())
    );
    sqlx::query(
        "INSERT INTO commands (cmd_id, zone_id, channel, cmd, source) VALUES ($1, $2, 'pump_irrigation', 'run_pump', 'scheduler')",
    )
    .bind(&first)
    .bind(zone_id)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(fires::claim(&db.pool, key, "another").await.unwrap(), None);
    assert!(
        !fires::skip(&db.pool, key).await.unwrap(),
        "a fired slot is not skipped"
    );
    assert!(fires::settled(&db.pool, slot).await.unwrap().contains(&key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_slot_is_recorded_once_and_never_fired() {
    let (db, key) = slot(Kind::Lighting, 6).await;
    let (zone_id, _, slot) = key;
    assert!(fires::skip(&db.pool, key).await.unwrap());
    assert!(!fires::skip(&db.pool, key).await.unwrap());
    assert_eq!(fires::claim(&db.pool, key, "late").await.unwrap(), None);
    let settled = fires::settled(&db.pool, slot).await.unwrap();
    assert!(settled.contains(&key));
    // Another kind at the same instant is another slot.
    assert!(!settled.contains(&(zone_id, Kind::Irrigation, slot)));
}

/// Eight claims at once, each with its own fresh id.
async fn futures_join(pool: &sqlx::PgPool, key: fires::SlotKey) -> Vec<Option<String>> {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(
                async move { fires::claim(&pool, key, &format!("cmd-{i}")).await.unwrap() },
            )
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
