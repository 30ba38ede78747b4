//! The Redis pool against the real Redis (`REDIS_URL`, else 127.0.0.1:6379).

use common::store::redis::{create_pool, ping};
use deadpool_redis::redis::AsyncCommands;

use testkit::redis_url as url;

#[tokio::test]
async fn pool_pings_and_round_trips_a_value() {
    let pool = create_pool(&url(), 4).unwrap();
    assert!(
        ping(&pool).await,
        "tests need Redis at {} (run `make services`)",
        url()
    );
    let key = format!("hydro-test:{}", uuid::Uuid::new_v4());
    let mut conn = pool.get().await.unwrap();
    let _: () = conn.set_ex(&key, "v", 30).await.unwrap();
    let got: String = conn.get(&key).await.unwrap();
    assert_eq!(got, "v");
    let _: () = conn.del(&key).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_down_not_hung() {
    let pool = create_pool(&format!("redis://127.0.0.1:{}", testkit::free_port()), 1).unwrap();
    let started = std::time::Instant::now();
    assert!(!ping(&pool).await);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
