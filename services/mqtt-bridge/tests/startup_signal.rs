//! SIGTERM during start-up stops the bridge at once, while it still waits
//! for PostgreSQL (that wait lasts up to 30 s otherwise).

use std::time::Duration;

use testkit::free_port;
use testkit::process::sigterm_while_waiting;

#[tokio::test]
async fn sigterm_while_waiting_for_postgres_stops_at_once() {
    let nowhere = format!("postgres://hydro:hydro@127.0.0.1:{}/hydro", free_port());
    let env = [
        ("DATABASE_URL".to_owned(), nowhere),
        ("HTTP_PORT".to_owned(), "0".to_owned()),
    ];
    let (took, status) = sigterm_while_waiting(
        env!("CARGO_BIN_EXE_mqtt-bridge"),
        &env,
        "PostgreSQL not reachable yet",
        Duration::from_secs(20),
    )
    .await;
    assert!(status.success(), "exit status {status}");
    // "At once" with room for a slow, busy machine; the wait it cuts short
    // would have lasted 30 s.
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGTERM"
    );
}
