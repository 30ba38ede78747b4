//! SIGTERM during start-up stops the logger at once, while it still waits
//! for Redis (that wait lasts up to 30 s otherwise).

use std::time::Duration;

use testkit::process::sigterm_while_waiting;
use testkit::{TestDb, free_port};

#[tokio::test]
async fn sigterm_while_waiting_for_redis_stops_at_once() {
    let db = TestDb::new().await;
    let env = [
        ("DATABASE_URL".to_owned(), db.url.clone()),
        (
            "REDIS_URL".to_owned(),
            format!("redis://127.0.0.1:{}", free_port()),
        ),
        ("HTTP_PORT".to_owned(), "0".to_owned()),
    ];
    let (took, status) = sigterm_while_waiting(
        env!("CARGO_BIN_EXE_history-logger"),
        &env,
        "Redis not reachable yet",
        Duration::from_secs(20),
    )
    .await;
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGTERM"
    );
}
