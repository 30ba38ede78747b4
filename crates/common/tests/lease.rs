//! The PostgreSQL lease: one holder at a time; a standby takes over when the
//! holder dies (here: its task is killed without releasing) or stops.

use std::time::Duration;

use common::runtime::lease::Lease;
use common::runtime::lease::LeaseGuard;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::{TcpProxy, TestDb, eventually, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Who holds the lease `job` now.
async fn holder_of_job(db: &TestDb) -> String {
    testkit::scalar(&db.pool, "SELECT holder FROM leases WHERE name = 'job'").await
}

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
    let taken = eventually(ttl * 10, || async {
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
    // Over two TTLs (several of the standby's attempts), the live holder
    // keeps the lease and the standby never thinks it has it.
    for _ in 0..(2 * ttl.as_millis() / 20) {
        assert!(!standby.is_held(), "two holders at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(holder.is_held(), "the holder kept renewing");

    holder_runtime.shutdown_background();
    tokio::time::timeout(ttl * 10, standby.wait_held())
        .await
        .expect("standby takes over within a few TTLs of the holder's death");
    assert_eq!(holder_of_job(&db).await, "standby");
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

/// A TCP proxy that, when stalled, holds every byte in both directions on
/// the connections it has (and accepts new ones, which hang likewise): a
/// PostgreSQL that stops answering without closing anything.
struct StallProxy {
    port: u16,
    open: watch::Sender<bool>,
}

impl StallProxy {
    async fn start(upstream: (String, u16)) -> StallProxy {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (open, rx) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, rx.clone()));
                tokio::spawn(pump(sr, cw, rx.clone()));
            }
        });
        StallProxy { port, open }
    }

    fn stall(&self) {
        self.open.send_replace(false);
    }

    fn resume(&self) {
        self.open.send_replace(true);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut open: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if open.wait_for(|o| *o).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// How PostgreSQL fails for the holder.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Stops answering: the renewal hangs.
    Stall,
    /// Closes the connections and refuses new ones: the renewal fails.
    Cut,
}

/// Samples both guards every few milliseconds for `span`, asserting they
/// never hold at once. The standby is read first: the holder only ever
/// turns from held to not, so "standby held, then holder held" means both
/// held at the standby's reading.
async fn never_both(holder: &LeaseGuard, standby: &LeaseGuard, span: Duration) -> usize {
    let end = tokio::time::Instant::now() + span;
    let mut samples = 0;
    while tokio::time::Instant::now() < end {
        let s = standby.is_held();
        let h = holder.is_held();
        assert!(!(s && h), "holder and standby both hold the lease");
        samples += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    samples
}

/// The holder reaches PostgreSQL through a proxy; the standby directly.
/// When the holder's PostgreSQL fails, the holder stops by its own clock,
/// before the database expiry; the standby takes over after it; at no
/// sampled instant do both hold it.
async fn holder_stops_before_standby_takes_over(fault: Fault) {
    let db = TestDb::new().await;
    let ttl = Duration::from_secs(2);
    let options: PgConnectOptions = db.url.parse().unwrap();
    let upstream = (options.get_host().to_owned(), options.get_port());
    let (stall, cut) = match fault {
        Fault::Stall => (Some(StallProxy::start(upstream).await), None),
        Fault::Cut => (None, Some(TcpProxy::start(upstream).await)),
    };
    let port = stall
        .as_ref()
        .map_or_else(|| cut.as_ref().unwrap().port, |p| p.port);
    let holder_pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.host("127.0.0.1").port(port))
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let mut holder = Lease::new(holder_pool, "job", "holder", ttl).spawn(stop.clone());
    tokio::time::timeout(ttl * 10, holder.wait_held())
        .await
        .expect("holder acquires");
    let standby = Lease::new(db.pool.clone(), "job", "standby", ttl).spawn(stop.clone());
    never_both(&holder, &standby, ttl).await;
    assert!(holder.is_held(), "the holder kept renewing");

    let failed_at = tokio::time::Instant::now();
    match fault {
        Fault::Stall => stall.as_ref().unwrap().stall(),
        Fault::Cut => cut.as_ref().unwrap().cut(),
    }
    // Every renewal that can succeed was sent before the fault, so the
    // holder's deadline lies within the TTL (less the margin) of it.
    let bound = failed_at + ttl - common::runtime::lease::safety_margin(ttl);
    let deadline = holder.deadline().expect("held when the fault begins");
    assert!(
        deadline <= bound,
        "deadline {:?} after the fault",
        deadline - failed_at
    );

    // Sample both until the standby holds, for up to many TTLs.
    let end = failed_at + ttl * 15;
    let mut samples = 0;
    loop {
        let s = standby.is_held();
        let now = tokio::time::Instant::now();
        let h = holder.is_held();
        assert!(!(s && h), "holder and standby both hold the lease");
        assert!(!(h && now >= bound), "the holder acts past its deadline");
        samples += 1;
        if s {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the standby did not take over (holder held: {h})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!holder.is_held(), "the holder stood down");
    assert!(samples > 20, "sampled {samples} times");

    // PostgreSQL answers the holder again: its held-up renewal and the next
    // ones find the lease taken; still never both.
    match fault {
        Fault::Stall => stall.as_ref().unwrap().resume(),
        Fault::Cut => cut.as_ref().unwrap().restore(),
    }
    never_both(&holder, &standby, ttl * 2).await;
    assert!(standby.is_held(), "the standby keeps it");
    assert!(!holder.is_held());
    assert_eq!(holder_of_job(&db).await, "standby");
    stop.cancel();
}

#[tokio::test]
async fn a_stalled_postgres_fences_the_holder_by_its_own_clock() {
    holder_stops_before_standby_takes_over(Fault::Stall).await;
}

#[tokio::test]
async fn a_cut_postgres_stands_the_holder_down() {
    holder_stops_before_standby_takes_over(Fault::Cut).await;
}
