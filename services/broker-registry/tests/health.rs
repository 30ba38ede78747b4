//! broker-registry's health monitor: samples stored and exported, a dead
//! broker sampled OFFLINE without being declared so, the dashboard served.
//!
//! The Prometheus recorder is process-wide: every test in a binary records
//! into the same one. This binary holds one test, so the broker figures it
//! reads were recorded by its own registry. Keep it to one test.

mod helpers;

use helpers::{WAIT, spawn_registry};
use testkit::{count_comes_to, eventually};

/// The value of the series `series` (name and labels, as exported), if any.
fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_sampled_stored_and_exported_and_the_dashboard_is_served() {
    let mut r = spawn_registry(&["primary", "primary"], &[]).await;
    let sampled = "SELECT count(DISTINCT broker_id) FROM broker_health_samples \
         WHERE probe_ok AND latency_ms IS NOT NULL AND status <> 'OFFLINE' AND uptime_sec IS NOT NULL";
    assert!(
        count_comes_to(r.pool(), sampled, WAIT, |n| n == 2).await,
        "both brokers sampled with their $SYS figures"
    );
    let counted = eventually(WAIT, || async {
        let (last_seen, connections): (Option<chrono::DateTime<chrono::Utc>>, i32) =
            sqlx::query_as("SELECT last_seen_at, connections FROM brokers WHERE id = 'mqtt1'")
                .fetch_one(r.pool())
                .await
                .ok()?;
        // At least the registry itself is a client of the broker.
        (last_seen.is_some() && connections >= 1).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the broker's figures reach its row");
    // This binary's only test: the recorder's figures are this registry's.
    let metrics = testkit::scrape_metrics(&r.base).await;
    for broker in ["mqtt1", "mqtt2"] {
        let status = gauge(&metrics, &format!("broker_status{{broker=\"{broker}\"}}"));
        assert!(
            status.is_some_and(|s| s < 3.0),
            "{broker} exported, not OFFLINE:\n{metrics}"
        );
        let load = gauge(
            &metrics,
            &format!("broker_load_index{{broker=\"{broker}\"}}"),
        );
        assert!(
            load.is_some_and(|l| l >= 0.0),
            "{broker}'s load index exported:\n{metrics}"
        );
    }
    let (status, health) = r.get("/health").await;
    assert_eq!(status, 200, "{health}");

    // A dead broker: its samples say OFFLINE; the status is failover's call.
    r.brokers[1].kill();
    let offline = "SELECT count(*) FROM broker_health_samples WHERE broker_id = 'mqtt2' AND NOT probe_ok AND status = 'OFFLINE'";
    assert!(count_comes_to(r.pool(), offline, WAIT, |n| n > 0).await);
    let status: String =
        testkit::scalar(r.pool(), "SELECT status FROM brokers WHERE id = 'mqtt2'").await;
    assert_ne!(
        status, "OFFLINE",
        "the monitor does not decide a broker is dead"
    );

    let page = r.http.get(format!("{}/", r.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("MQTT load balancing") && html.contains("/api/brokers"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
    let (status, missing) = r.get("/api/nothing").await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("route_not_found"))
    );
    let (status, history) = r.get("/api/failovers").await;
    assert_eq!(status, 200);
    assert!(history["data"].as_array().unwrap().is_empty());
    assert_eq!(r.get("/api/advisor").await.0, 200);
    assert_eq!(r.get("/api/status-changes").await.0, 200);
}
