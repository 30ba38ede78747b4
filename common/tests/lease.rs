//! The PostgreSQL lease: one holder at a time; a standby takes over when the
//! holder dies (here: its task is killed without releasing) or stops.

use std::time::Duration;

use common::lease::Lease;
use common::testing::{TestDb, eventually};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn only_one_holder_and_expiry_hands_over() {
    let db = TestDb::new().await;
    let ttl = Duration::from_secs(2);
    let a = Lease::new(db.pool.clone(), "job", "a", ttl);
    let b = Lease::new(db.pool.clone(), "job", "b", ttl);
    assert!(a.try_acquire().await.unwrap());
    assert!(
        !b.try_acquire().await.unwrap(),
        "b must not take a live lease"
    );
    assert!(a.try_acquire().await.unwrap(), "a renews");
    // a dies without releasing: after the TTL, b takes over and a cannot renew.
    let taken = eventually(Duration::from_secs(10), || async {
        b.try_acquire().await.unwrap().then_some(())
    })
    .await;
    assert!(taken.is_some(), "b takes the expired lease");
    assert!(!a.try_acquire().await.unwrap(), "a lost it");
}

/// The holder runs in a runtime of its own, which is then torn down: its
/// tasks vanish mid-flight, never releasing, as in a crash.
#[tokio::test]
async fn standby_takes_over_when_the_holder_is_killed() {
    let db = TestDb::new().await;
    let ttl = Duration::from_secs(2);
    let url = db.url.clone();
    let (holder_runtime, holder) = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let guard = runtime.block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let mut guard = Lease::new(pool, "job", "holder", ttl).spawn(CancellationToken::new());
            tokio::time::timeout(Duration::from_secs(10), guard.wait_held())
                .await
                .expect("holder acquires");
            guard
        });
        (runtime, guard)
    })
    .await
    .unwrap();
    assert!(holder.is_held());
    let standby_stop = CancellationToken::new();
    let mut standby =
        Lease::new(db.pool.clone(), "job", "standby", ttl).spawn(standby_stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!standby.is_held(), "two holders at once");

    let killed_at = std::time::Instant::now();
    holder_runtime.shutdown_background();
    tokio::time::timeout(Duration::from_secs(10), standby.wait_held())
        .await
        .expect("standby takes over within seconds");
    assert!(
        killed_at.elapsed() < ttl * 2,
        "took {:?}",
        killed_at.elapsed()
    );
    let row: String = sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'job'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(row, "standby");
    standby_stop.cancel();
}

#[tokio::test]
async fn release_on_shutdown_hands_over_at_once() {
    let db = TestDb::new().await;
    let ttl = Duration::from_secs(30);
    let stop = CancellationToken::new();
    let mut first = Lease::new(db.pool.clone(), "job", "first", ttl).spawn(stop.clone());
    first.wait_held().await;
    stop.cancel();
    let second = Lease::new(db.pool.clone(), "job", "second", ttl);
    let took = eventually(Duration::from_secs(5), || async {
        second.try_acquire().await.unwrap().then_some(())
    })
    .await;
    assert!(
        took.is_some(),
        "released lease is free long before its 30 s TTL"
    );
}
