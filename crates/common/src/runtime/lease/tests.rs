//! The unit tests of `lease`.

//! The local deadline, on a paused clock: no sleeps, exact instants.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::runtime::leader_ticks::{LeaderTicks, Turn};

const TTL: Duration = Duration::from_secs(3);
const MS: Duration = Duration::from_millis(1);

/// Runs the renewal loop with `attempt(n)` as the n-th acquire/renew.
fn start<Fut>(
    attempt: impl Fn(usize) -> Fut + Send + Sync + 'static,
) -> (LeaseGuard, Arc<AtomicUsize>, CancellationToken)
where
    Fut: std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'static,
{
    let (fence, guard) = Fence::new(TTL);
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (c, s) = (calls.clone(), stop.clone());
    tokio::spawn(async move {
        compete(
            &fence,
            "t",
            "h",
            || attempt(c.fetch_add(1, Ordering::SeqCst)),
            &s,
        )
        .await;
    });
    (guard, calls, stop)
}

/// Moves the paused clock on by `d`, in small steps, letting the lease
/// task run at each.
async fn advance(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let step = (end - Instant::now()).min(Duration::from_millis(10));
        tokio::time::advance(step).await;
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }
}

async fn hang_after_first(n: usize) -> Result<bool, sqlx::Error> {
    if n == 0 {
        Ok(true)
    } else {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_renewal_stops_the_holder_at_its_local_deadline() {
    let t0 = Instant::now();
    let (mut guard, calls, _stop) = start(hang_after_first);
    guard.wait_held().await;
    assert_eq!(Instant::now(), t0);
    let deadline = t0 + TTL - safety_margin(TTL);
    assert_eq!(guard.deadline(), Some(deadline));

    advance(deadline - t0 - MS).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the renewal was sent and hangs"
    );
    assert!(guard.is_held(), "still inside the deadline");
    advance(MS).await;
    assert!(!guard.is_held(), "the deadline passed with no renewal");
    assert_eq!(guard.deadline(), None);
    // Stays down however long the renewal hangs (it is given up after
    // the TTL and retried, and hangs again).
    for _ in 0..20 {
        advance(TTL / 4).await;
        assert!(!guard.is_held());
    }
    assert!(deadline < t0 + TTL, "stops before the database expiry");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_when_the_renewal_was_sent() {
    let t0 = Instant::now();
    // Every renewal answers yes, 500 ms after it was sent.
    let (mut guard, _calls, _stop) = start(|n| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(true)
    });
    guard.wait_held().await;
    advance(TTL / 3 + Duration::from_millis(500)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        guard.deadline(),
        Some(t0 + TTL / 3 + TTL - safety_margin(TTL)),
        "from the send, not the answer"
    );
    // Held throughout while renewals keep answering.
    for _ in 0..40 {
        advance(Duration::from_millis(250)).await;
        assert!(guard.is_held());
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_or_failed_renewal_stops_at_once() {
    for fail in [false, true] {
        let (mut guard, calls, _stop) = start(move |n| async move {
            match n {
                0 => Ok(true),
                _ if fail => Err(sqlx::Error::PoolTimedOut),
                _ => Ok(false),
            }
        });
        guard.wait_held().await;
        advance(TTL / 3).await;
        tokio::task::yield_now().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!guard.is_held(), "fail={fail}");
    }
}

#[tokio::test(start_paused = true)]
async fn leader_ticks_stop_at_the_deadline_while_the_renewal_hangs() {
    let t0 = Instant::now();
    let (guard, _calls, _stop) = start(hang_after_first);
    let deadline = t0 + TTL - safety_margin(TTL);
    let mut turns = LeaderTicks::new(guard, Duration::from_millis(100));
    let stop = CancellationToken::new();
    let mut seen = Vec::new();
    while let Ok(Some(turn)) = tokio::time::timeout(TTL * 10, turns.next(&stop)).await {
        seen.push((turn, Instant::now()));
    }
    assert_eq!(seen[0], (Turn::Gained, t0));
    assert!(seen.len() > 10, "ticked while held: {}", seen.len());
    let (_, last) = seen.last().unwrap();
    assert!(
        *last < deadline,
        "a turn at {:?} past the deadline",
        *last - t0
    );
    assert!(!turns.is_held());
}
