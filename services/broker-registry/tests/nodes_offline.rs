//! The `nodes_offline` gauge: broker-registry's health monitor counts the
//! bound nodes whose status is OFFLINE (what the `HydroNodesOffline` alert
//! in deploy/prometheus/alerts.yml reads).
//!
//! The Prometheus recorder is process-wide: every test in a binary records
//! into the same one. This binary holds one test, so the gauge it reads was
//! set by its own registry from its own database. Keep it to one test.

mod helpers;

use helpers::{TestRegistry, WAIT, seed_nodes, spawn_registry};
use testkit::eventually;

/// The exported value of the unlabelled `nodes_offline` gauge, if any.
async fn nodes_offline(r: &TestRegistry) -> Option<f64> {
    let text = r
        .http
        .get(format!("{}/metrics", r.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("nodes_offline ")?.parse().ok())
}

/// Waits until the gauge reads exactly `want`; otherwise the value it reads
/// at the end.
async fn wait_gauge(r: &TestRegistry, want: f64) -> Result<(), Option<f64>> {
    let seen = eventually(WAIT, || async {
        (nodes_offline(r).await == Some(want)).then_some(())
    })
    .await;
    match seen {
        Some(()) => Ok(()),
        None => Err(nodes_offline(r).await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_offline_nodes_are_counted_and_no_others() {
    let r = spawn_registry(&["primary"], &[]).await;
    seed_nodes(r.pool(), 3, 0).await;
    let steps = [
        (
            // Known from its hello only, never bound: its silence alarms nobody.
            "INSERT INTO nodes (uid, type, status) VALUES ('nd-unbound', 'ph', 'OFFLINE');
             UPDATE nodes SET status = 'ONLINE' WHERE uid LIKE 'nd-n-%'",
            0.0,
            "every bound node ONLINE: the gauge is exported as 0",
        ),
        (
            // One bound node's last will; one decommissioned node OFFLINE too.
            "UPDATE nodes SET status = 'OFFLINE' WHERE uid IN ('nd-n-1', 'nd-n-2');
             UPDATE nodes SET lifecycle = 'DECOMMISSIONED' WHERE uid = 'nd-n-2'",
            1.0,
            "one bound node OFFLINE (the unbound and the decommissioned ones not counted)",
        ),
        (
            "UPDATE nodes SET status = 'ONLINE' WHERE uid = 'nd-n-1'",
            0.0,
            "back ONLINE: the gauge falls back to 0",
        ),
    ];
    for (change, want, what) in steps {
        sqlx::raw_sql(change).execute(r.pool()).await.unwrap();
        assert_eq!(wait_gauge(&r, want).await, Ok(()), "{what}");
    }
}
