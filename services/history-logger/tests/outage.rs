//! PostgreSQL or Redis unreachable for a few seconds under a stream of
//! telemetry: nothing is lost and nothing doubled. The service reaches the
//! real PostgreSQL / Redis through a TCP proxy the test cuts, so it sees what
//! it sees when they stop: connections reset, new connects refused.

mod helpers;

use std::str::FromStr;
use std::time::Duration;

use helpers::{TELEMETRY_ROWS, World, proxied_redis, publish, reading};
use sqlx::postgres::PgConnectOptions;
use testkit::TcpProxy;

// In the past: a reading more than HISTORY_MAX_FUTURE_SKEW_SEC ahead is refused.
const T0: i64 = 1_700_000_000;
const PH: &str = "hydro/gh-t/zn-a/nd-1/ph_sensor/telemetry";
const MESSAGES: i64 = 1200;

/// Publishes MESSAGES readings over ~5 s while the proxy is cut from 1 s to
/// 4 s (and checks the service saw it: its `/health` names `dependency`
/// down), then expects every reading stored exactly once.
async fn stream_through_an_outage(world: &World, proxy: &TcpProxy, port: u16, dependency: &str) {
    let publisher = world.publisher().await;
    let stream = tokio::spawn(async move {
        for i in 0..MESSAGES {
            publish(&publisher, PH, reading("PH", 6.0, T0 + i)).await;
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    let health = format!("http://127.0.0.1:{port}/health");
    let saw_outage = testkit::eventually(Duration::from_secs(3), || async {
        let body: serde_json::Value = reqwest::get(&health).await.ok()?.json().await.ok()?;
        (body["dependencies"][dependency]["state"] == "down").then_some(())
    })
    .await;
    assert!(
        saw_outage.is_some(),
        "the service must see {dependency} down while the proxy is cut"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    stream.await.expect("every reading published");
    let stored = world.wait_count(TELEMETRY_ROWS, MESSAGES).await;
    assert_eq!(stored, MESSAGES, "every reading stored exactly once");
    assert!(world.dead_letters().await.is_empty(), "nothing refused");
}

/// A proxy to the world's PostgreSQL, and the database URL through it.
async fn proxied_database(world: &World) -> (TcpProxy, String) {
    let options = PgConnectOptions::from_str(&world.db.url).expect("test database url");
    let proxy = TcpProxy::start((options.get_host().to_owned(), options.get_port())).await;
    let proxied = world.db.url.replace(
        &format!("@{}:{}/", options.get_host(), options.get_port()),
        &format!("@127.0.0.1:{}/", proxy.port),
    );
    assert_ne!(proxied, world.db.url, "the service goes through the proxy");
    (proxy, proxied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_3s_loses_nothing() {
    let world = World::new().await;
    let (proxy, proxied) = proxied_database(&world).await;
    let running = world.start("hl-a", &[("DATABASE_URL", &proxied)]).await;
    stream_through_an_outage(&world, &proxy, running.port, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_for_3s_loses_nothing() {
    let world = World::new().await;
    let (proxy, proxied) = proxied_redis().await;
    let running = world.start("hl-a", &[("REDIS_URL", &proxied)]).await;
    stream_through_an_outage(&world, &proxy, running.port, "redis").await;
}

/// The queue fills while PostgreSQL is away: ingest stops acknowledging to
/// the broker (which holds the rest) instead of dropping; when PostgreSQL
/// returns, every reading is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_leaves_messages_at_the_broker() {
    let world = World::new().await;
    let (proxy, proxied) = proxied_database(&world).await;
    let running = world
        .start(
            "hl-a",
            &[("DATABASE_URL", &proxied), ("HISTORY_QUEUE_MAX", "100")],
        )
        .await;
    proxy.cut();
    let publisher = world.publisher().await;
    // More than the bound plus one burst, so some must wait at the broker.
    const N: i64 = 1600;
    for i in 0..N {
        publish(&publisher, PH, reading("PH", 6.0, T0 + i)).await;
    }
    // The queue holds at most its bound; the rest waits unacknowledged.
    let queued = testkit::eventually(Duration::from_secs(10), || async {
        let len = running.queue.stats().await.ok()?.0;
        (len >= 100).then_some(len)
    })
    .await
    .expect("the queue fills up to its bound");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (len, _) = running.queue.stats().await.expect("queue stats");
    let at_most = 100 + history_logger::ingest::MAX_BURST as u64;
    assert!(
        len <= at_most,
        "the queue stops at its bound plus one burst ({queued} then {len})"
    );
    assert!((len as i64) < N, "the broker holds the rest ({len} queued)");
    assert_eq!(
        world.count(TELEMETRY_ROWS).await,
        0,
        "nothing written while PostgreSQL is away"
    );
    proxy.restore();
    assert_eq!(
        world.wait_count(TELEMETRY_ROWS, N).await,
        N,
        "every reading stored exactly once"
    );
    assert!(world.dead_letters().await.is_empty());
}
