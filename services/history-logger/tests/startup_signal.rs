//! SIGTERM during start-up stops the logger at once, while it still waits
//! for Redis (that wait lasts up to 30 s otherwise).

use testkit::process::assert_sigterm_stops_startup;
use testkit::{TestDb, free_port};

#[tokio::test]
async fn sigterm_while_waiting_for_redis_stops_at_once() {
    let db = TestDb::new().await;
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let env = [("DATABASE_URL", db.url.as_str()), ("REDIS_URL", &redis)];
    let logger = env!("CARGO_BIN_EXE_history-logger");
    assert_sigterm_stops_startup(logger, &env, "Redis not reachable yet").await;
}
