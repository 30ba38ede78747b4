//! Readings are checked before they are stored (issue 11): each refusal has
//! its reason, is kept aside and counted, and the valid readings around it
//! are stored exactly once; `telemetry_last` never takes a reading from the
//! future; two readings of one second are never silently lost; only the
//! firmware's last will marks a node OFFLINE.

mod helpers;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use helpers::{TELEMETRY_ROWS, World, publish, reading};
use serde_json::Value;
use testkit::eventually;

const PH: &str = "hydro/gh-t/zn-a/nd-1/ph_sensor/telemetry";

fn now() -> i64 {
    Utc::now().timestamp()
}

/// Waits for `n` dead letters; returns them by reason.
async fn letters(world: &World, n: usize) -> BTreeMap<String, Vec<Value>> {
    let all = eventually(Duration::from_secs(20), || async {
        let l = world.dead_letters().await;
        (l.len() >= n).then_some(l)
    })
    .await
    .unwrap_or_default();
    let mut by_reason: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for l in all {
        by_reason
            .entry(l["reason"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(l);
    }
    by_reason
}

/// Waits until `telemetry_dropped_total{reason}` has grown by `n` from
/// `before`. The counter moves after the batch is acknowledged, a moment
/// after its dead letters are visible: one look could come in between.
async fn wait_dropped(reason: &str, before: f64, n: usize) {
    let counted = eventually(Duration::from_secs(20), || async {
        (dropped(reason) - before >= n as f64).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "telemetry_dropped_total{{reason=\"{reason}\"}} counted {} of {n}",
        dropped(reason) - before
    );
}

/// `telemetry_dropped_total{reason}` of this process, for `reason`.
fn dropped(reason: &str) -> f64 {
    let text = common::runtime::http::metrics_handle().render();
    testkit::metric_sum(
        &text,
        &format!(
            r#"{}{{reason="{reason}"}}"#,
            common::metrics::TELEMETRY_DROPPED
        ),
    )
}

#[tokio::test]
async fn every_refused_reading_has_its_reason_and_the_valid_ones_land_once() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    let t = now() - 600;
    let cases: Vec<(String, String, &str)> = vec![
        (PH.into(), reading("PH", 6.5, now() + 3600), "future_ts"),
        (
            // nd-1 lives in zn-a: a reading of it under zn-b is not zn-b's.
            "hydro/gh-t/zn-b/nd-1/ph_sensor/telemetry".into(),
            reading("PH", 6.5, t),
            "zone_mismatch",
        ),
        (
            "hydro/gh-other/zn-a/nd-1/ph_sensor/telemetry".into(),
            reading("PH", 6.5, t),
            "greenhouse_mismatch",
        ),
        (
            "hydro/gh-t/zn-a/nd-1/ec_sensor/telemetry".into(),
            reading("EC", 1.5, t),
            "unknown_channel",
        ),
        (PH.into(), reading("EC", 1.5, t), "metric_mismatch"),
        (
            "hydro/gh-t/zn-a/nd-1/pump_acid/telemetry".into(),
            reading("PH", 6.5, t),
            "metric_mismatch",
        ),
        (PH.into(), reading("PH", -5.0, t), "out_of_range"),
        (PH.into(), reading("PH", 1e308, t), "out_of_range"),
        (
            "hydro/gh-t/zn-b/nd-3/temp_air/telemetry".into(),
            reading("TEMPERATURE", 126.0, t),
            "out_of_range",
        ),
        (
            PH.into(),
            format!(r#"{{"metric_type":"PH","value":NaN,"ts":{t}}}"#),
            "non_finite_value",
        ),
        (
            "hydro/gh-t/zn-a/nd-1/lwt".into(),
            "garbage".into(),
            "invalid_lwt",
        ),
        (
            "hydro/gh-t/zn-a/nd-1/lwt".into(),
            String::new(),
            "invalid_lwt",
        ),
    ];
    let before: BTreeMap<&str, f64> = cases.iter().map(|c| (c.2, dropped(c.2))).collect();
    // A valid reading before each bad one, and one after them all.
    for (i, (topic, payload, _)) in cases.iter().enumerate() {
        publish(&nodes, PH, reading("PH", 7.0, t + 1 + i as i64)).await;
        publish(&nodes, topic, payload.clone()).await;
    }
    let last_ts = t + 100;
    publish(&nodes, PH, reading("PH", 7.0, last_ts)).await;
    let good = cases.len() as i64 + 1;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, good).await, good);

    let by_reason = letters(&world, cases.len()).await;
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        *want.entry(c.2).or_default() += 1;
    }
    let got: BTreeMap<&str, usize> = by_reason
        .iter()
        .map(|(r, l)| (r.as_str(), l.len()))
        .collect();
    assert_eq!(got, want);
    for (reason, n) in &want {
        wait_dropped(reason, before[reason], *n).await;
    }
    let misrouted = &by_reason["zone_mismatch"][0];
    assert_eq!(
        misrouted["topic"],
        "hydro/gh-t/zn-b/nd-1/ph_sensor/telemetry"
    );
    assert!(
        misrouted["detail"].as_str().unwrap().contains("gh-t/zn-a"),
        "{misrouted}"
    );

    // Exactly the valid readings, once each, all nd-1's, all in zn-a.
    let stored: Vec<(f64, i64, String)> = sqlx::query_as(
        "SELECT s.value, count(*), z.uid FROM telemetry_samples s JOIN zones z ON z.id = s.zone_id
          GROUP BY s.value, z.uid",
    )
    .fetch_all(&world.db.pool)
    .await
    .unwrap();
    assert_eq!(stored, vec![(7.0, good, "zn-a".to_owned())]);
    assert_eq!(
        world
            .count("SELECT count(DISTINCT ts) FROM telemetry_samples")
            .await,
        good
    );
    assert_eq!(world.last().await, Some((7.0, last_ts)));
    // Garbage on the lwt topic took nobody down.
    assert_eq!(
        world
            .count("SELECT count(*) FROM nodes WHERE status = 'OFFLINE'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_future_reading_never_freezes_telemetry_last() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    // Far ahead: refused, so the current readings after it land.
    publish(&nodes, PH, reading("PH", 9.0, now() + 86_400 * 365)).await;
    let t = now();
    publish(&nodes, PH, reading("PH", 6.0, t - 2)).await;
    publish(&nodes, PH, reading("PH", 6.1, t - 1)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 2).await, 2);
    assert_eq!(world.last().await, Some((6.1, t - 1)));

    // Ahead of our clock but within the skew: history, not the current value.
    let ahead = now() + 120;
    publish(&nodes, PH, reading("PH", 6.15, ahead)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 3).await, 3);
    assert_eq!(world.last().await, Some((6.1, t - 1)));

    // A row already in the future (left from before these rules) gives way
    // to the next current reading.
    sqlx::query("UPDATE telemetry_last SET ts = '9999-01-01', value = 9.9")
        .execute(&world.db.pool)
        .await
        .unwrap();
    let t = now();
    publish(&nodes, PH, reading("PH", 6.2, t)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 4).await, 4);
    let replaced = eventually(Duration::from_secs(10), || async {
        world.last().await.filter(|l| *l == (6.2, t))
    })
    .await;
    assert_eq!(replaced, Some((6.2, t)));
    // And from there on it moves forward only.
    publish(&nodes, PH, reading("PH", 5.0, t - 30)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 5).await, 5);
    assert_eq!(world.last().await, Some((6.2, t)));
}

#[tokio::test]
async fn a_second_reading_of_the_same_second_is_refused_and_counted() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    let t = now() - 60;
    let agree = "SELECT count(*) FROM telemetry_last l JOIN telemetry_samples s
                   ON s.node_id = l.node_id AND s.channel = l.channel
                  AND s.metric_type = l.metric_type AND s.ts = l.ts AND s.value = l.value";
    let before = dropped("same_second");

    // Back to back: in one batch the first wins; in two batches written at
    // once, the first committed. Either way one is stored and one refused.
    publish(&nodes, PH, reading("PH", 6.0, t)).await;
    publish(&nodes, PH, reading("PH", 6.4, t)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 1).await, 1);
    let first = letters(&world, 1).await;
    assert_eq!(first["same_second"].len(), 1, "{first:?}");
    let stored_at_t = || async {
        sqlx::query_scalar::<_, f64>(
            "SELECT value FROM telemetry_samples WHERE ts = to_timestamp($1)",
        )
        .bind(t as f64)
        .fetch_all(&world.db.pool)
        .await
        .unwrap()
    };
    let kept = stored_at_t().await;
    assert_eq!(kept.len(), 1);
    let kept = kept[0];
    let loser = if kept == 6.0 { 6.4 } else { 6.0 };
    assert_eq!(value_of(&first["same_second"][0]), loser);

    // Once one is stored: a different one is refused, the same one again
    // (a redelivery) is not.
    publish(&nodes, PH, reading("PH", 6.8, t)).await;
    publish(&nodes, PH, reading("PH", kept, t)).await;
    // A marker after them: when it is stored, they were handled.
    publish(&nodes, PH, reading("PH", 6.1, t - 1)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 2).await, 2);
    letters(&world, 2).await;
    // Anything refused by mistake would show by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_reason = letters(&world, 2).await;
    let mut refused: Vec<f64> = by_reason["same_second"].iter().map(value_of).collect();
    refused.sort_by(f64::total_cmp);
    let mut want = vec![loser, 6.8];
    want.sort_by(f64::total_cmp);
    assert_eq!(refused, want);
    assert_eq!(by_reason.len(), 1, "{by_reason:?}");
    wait_dropped("same_second", before, 2).await;
    assert_eq!(stored_at_t().await, vec![kept]);
    // telemetry_last holds the stored row of that second.
    assert_eq!(world.count(agree).await, 1);
    let last: f64 = sqlx::query_scalar("SELECT value FROM telemetry_last")
        .fetch_one(&world.db.pool)
        .await
        .unwrap();
    assert_eq!(last, kept);
}

/// The reading's value in a dead letter's payload.
fn value_of(letter: &Value) -> f64 {
    let p: Value = serde_json::from_str(letter["payload"].as_str().unwrap()).unwrap();
    p["value"].as_f64().unwrap()
}

#[tokio::test]
async fn a_node_moved_to_another_zone_is_followed_within_seconds() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    let t = now() - 60;
    publish(&nodes, PH, reading("PH", 6.0, t)).await;
    assert_eq!(world.wait_count(TELEMETRY_ROWS, 1).await, 1);

    sqlx::query(
        "UPDATE nodes SET zone_id = (SELECT id FROM zones WHERE uid = 'zn-b') WHERE uid = 'nd-1'",
    )
    .execute(&world.db.pool)
    .await
    .unwrap();
    // The logger looks a node up again on a mismatch once its entry is
    // older than RECHECK_AFTER (and forgets every entry after REFRESH).
    tokio::time::sleep(history_logger::resolver::RECHECK_AFTER + Duration::from_millis(200)).await;
    let moved = "hydro/gh-t/zn-b/nd-1/ph_sensor/telemetry";
    publish(&nodes, moved, reading("PH", 6.1, t + 1)).await;
    // Under its new zone: stored, as zn-b's (looked up again, not refused).
    assert_eq!(
        world
            .wait_count(
                "SELECT count(*) FROM telemetry_samples s JOIN zones z ON z.id = s.zone_id WHERE z.uid = 'zn-b'",
                1
            )
            .await,
        1
    );
    // Under its old zone: refused.
    publish(&nodes, PH, reading("PH", 6.2, t + 2)).await;
    let by_reason = letters(&world, 1).await;
    assert_eq!(by_reason["zone_mismatch"].len(), 1, "{by_reason:?}");
    assert_eq!(world.count(TELEMETRY_ROWS).await, 2);
}

#[tokio::test]
async fn only_the_firmwares_last_will_takes_a_node_offline() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    let lwt = "hydro/gh-t/zn-a/nd-1/lwt";
    let offline = "SELECT count(*) FROM nodes WHERE uid = 'nd-1' AND status = 'OFFLINE'";
    let online = format!(r#"{{"status":"ONLINE","ts":{}}}"#, now());
    publish(&nodes, "hydro/gh-t/zn-a/nd-1/status", online).await;
    assert_eq!(
        world
            .wait_count(
                "SELECT count(*) FROM nodes WHERE uid = 'nd-1' AND status = 'ONLINE'",
                1
            )
            .await,
        1
    );
    for garbage in ["", "OFFLINE", "offline\n", r#"{"status":"OFFLINE"}"#] {
        publish(&nodes, lwt, garbage).await;
    }
    let by_reason = letters(&world, 4).await;
    assert_eq!(by_reason["invalid_lwt"].len(), 4, "{by_reason:?}");
    assert_eq!(world.count(offline).await, 0);
    publish(&nodes, lwt, "offline").await;
    assert_eq!(world.wait_count(offline, 1).await, 1);
}
