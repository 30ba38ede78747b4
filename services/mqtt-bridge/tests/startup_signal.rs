//! SIGTERM during start-up stops the bridge at once, while it still waits
//! for PostgreSQL (that wait lasts up to 30 s otherwise).

use testkit::free_port;
use testkit::process::assert_sigterm_stops_startup;

#[tokio::test]
async fn sigterm_while_waiting_for_postgres_stops_at_once() {
    let nowhere = format!("postgres://hydro:hydro@127.0.0.1:{}/hydro", free_port());
    let bridge = env!("CARGO_BIN_EXE_mqtt-bridge");
    let waiting = "PostgreSQL not reachable yet";
    assert_sigterm_stops_startup(bridge, &[("DATABASE_URL", &nowhere)], waiting).await;
}
