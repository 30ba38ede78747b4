//! A zone that fails: an error (event, metric, alert), the others proceed.
//!
//! The Prometheus recorder is process-wide: every test in a binary records
//! into the same one. This binary holds one test, so the figures it reads
//! were recorded by its own engine. Keep it to one test.

mod helpers;

use helpers::*;
use serde_json::json;
use testkit::{eventually, metric_sum};

/// A zone with a typo in its overrides is an error (event, metric, alert at
/// over 10 % of the zones); the other zone is dosed; the fix resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_zone_is_an_error_and_the_others_proceed() {
    let w = world(2, 2, &[]).await;
    let pool = &w.db.pool;
    ph_overrides(pool, "zn-1", json!({"deadband": 0.1})).await;
    ph(pool, "nd-ph-1", 6.8).await;
    ph(pool, "nd-ph-2", 6.8).await;
    for zone in ["zn-1", "zn-2"] {
        ph_recipe(pool, zone).await;
    }
    let error = eventually(WAIT, || async {
        events(pool, "zn-1", "AUTOMATION_ERROR").await.pop()
    })
    .await
    .expect("zn-1's error is an event");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("capabilities.automation.ph.deadband: unknown key"),
        "{error}"
    );
    let dosed = wait_count(
        pool,
        "SELECT count(*) FROM commands c JOIN zones z ON z.id = c.zone_id \
         WHERE c.source = 'automation' AND z.uid = 'zn-2'",
        1,
    )
    .await;
    assert_eq!(dosed, 1, "zn-2 is dosed all the same");
    let active =
        "SELECT count(*) FROM alerts WHERE type = 'automation_zone_errors' AND status = 'ACTIVE'";
    assert_eq!(
        wait_count(pool, active, 1).await,
        1,
        "1 of 2 zones failing raises the alert"
    );
    let metrics = testkit::scrape_metrics(w.engine_url.as_deref().unwrap()).await;
    // This binary's only test: the recorder's figures are this engine's.
    let errors = |zone: &str| {
        metric_sum(
            &metrics,
            &format!("zone_processing_errors_total{{zone=\"{zone}\"}}"),
        )
    };
    assert!(
        errors("zn-1") >= 1.0,
        "zn-1's failed cycles counted:\n{metrics}"
    );
    assert_eq!(errors("zn-2"), 0.0, "zn-2 never failed:\n{metrics}");
    let concurrency = metric_sum(&metrics, "optimal_concurrency");
    assert!(
        (5.0..=50.0).contains(&concurrency),
        "optimal_concurrency exported, clamped to 5..50:\n{metrics}"
    );

    ph_overrides(pool, "zn-1", json!({"dead_band": 0.1})).await;
    let resolved =
        "SELECT count(*) FROM alerts WHERE type = 'automation_zone_errors' AND status = 'RESOLVED'";
    assert_eq!(
        wait_count(pool, resolved, 1).await,
        1,
        "a clean cycle resolves it"
    );
    assert_eq!(count(pool, active).await, 0);
}
