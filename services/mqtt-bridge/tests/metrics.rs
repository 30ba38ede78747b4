//! What the bridge's own actions record in its metrics.
//!
//! The Prometheus recorder is process-wide: every test in a binary records
//! into the same one. This binary holds one test, so each figure it reads is
//! a delta around its own action and nothing else can supply it. Keep it to
//! one test.

mod helpers;

use helpers::spawn_app_with;
use testkit::metric_sum;

const POSTS: &str =
    r#"http_requests_total{route="/bridge/zones/{zone_id}/commands",method="POST",status="200"}"#;
const POST_TIMES: &str = r#"http_request_duration_seconds_count{route="/bridge/zones/{zone_id}/commands",method="POST"}"#;
const TIMEOUTS: &str = r#"commands_finished_total{status="TIMEOUT"}"#;

#[tokio::test]
async fn metrics_count_requests_and_final_statuses() {
    let app = spawn_app_with(&[("COMMAND_TIMEOUT_SEC", "1")]).await;
    let scrape = || testkit::scrape_metrics(&app.base);
    let before = scrape().await;

    let (status, _) = app.stop_nutrients("m-1").await;
    assert_eq!(status, 200);
    assert_eq!(app.wait_status("m-1", "TIMEOUT").await, "TIMEOUT");

    let after = scrape().await;
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    assert_eq!(delta(POSTS), 1.0, "one command POST answered 200:\n{after}");
    assert_eq!(delta(POST_TIMES), 1.0, "one command POST timed:\n{after}");
    assert_eq!(delta(TIMEOUTS), 1.0, "one command timed out:\n{after}");
}
