//! SIGTERM during start-up stops the bridge at once, while it still waits
//! for PostgreSQL (that wait lasts up to 30 s otherwise).

use testkit::free_port;
use testkit::process::assert_sigterm_stops_startup;

#[tokio::test]
async fn sigterm_while_waiting_for_postgres_stops_at_once() {
    let nowhere = format!("postgres://hydro:hydro@127.0.0.1:{}/hydro", free_port());
    let env = [
        ("DATABASE_URL".to_owned(), nowhere),
        ("HTTP_PORT".to_owned(), "0".to_owned()),
    ];
    assert_sigterm_stops_startup(
        env!("CARGO_BIN_EXE_mqtt-bridge"),
        &env,
        "PostgreSQL not reachable yet",
    )
    .await;
}
