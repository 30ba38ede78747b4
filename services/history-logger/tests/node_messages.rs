//! Node messages end to end (status, lwt, heartbeat, error and channel
//! events, not telemetry): MQTT → Redis stream → PostgreSQL, against real
//! PostgreSQL, Redis and Mosquitto, checked in nodes, alerts and zone events;
//! status changes apply in arrival order. Telemetry is in `ingest.rs`.

mod helpers;

use helpers::{World, publish};

/// What the nodes publish (topic, payload), then the counts reached (waited
/// for, in turn), then the counts that hold right after: `(sql, n)`.
type Step = (
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, i64)],
    &'static [(&'static str, i64)],
);

const ACTIVE: &str =
    "SELECT count(*) FROM alerts WHERE type = 'node_offline' AND status = 'ACTIVE'";

#[tokio::test]
async fn node_messages_update_nodes_alerts_and_zone_events() {
    let (world, _, nodes) = World::with_logger(&[]).await;
    let steps: [Step; 6] = [
        (
            &[(
                "hydro/gh-t/zn-a/nd-1/heartbeat",
                r#"{"uptime":3600,"free_heap":102000,"rssi":-62,"fw_version":"2.3.1"}"#,
            )],
            &[(
                "SELECT count(*) FROM nodes WHERE uid = 'nd-1' AND uptime_seconds = 3600 AND free_heap_bytes = 102000 AND rssi = -62 AND fw_version = '2.3.1' AND last_heartbeat_at IS NOT NULL",
                1,
            )],
            &[],
        ),
        (
            &[(
                "hydro/gh-t/zn-a/nd-1/status",
                r#"{"status":"OFFLINE","ts":1800000000}"#,
            )],
            &[(ACTIVE, 1)],
            &[(
                "SELECT count(*) FROM nodes WHERE uid = 'nd-1' AND status = 'OFFLINE'",
                1,
            )],
        ),
        // The last will while already offline: still one alert, no second event.
        // (A status of another node, applied in order after it, marks when it is done.)
        (
            &[
                ("hydro/gh-t/zn-a/nd-1/lwt", "offline"),
                (
                    "hydro/gh-t/zn-a/nd-2/status",
                    r#"{"status":"ONLINE","ts":1800000000}"#,
                ),
            ],
            &[(
                "SELECT count(*) FROM nodes WHERE uid = 'nd-2' AND status = 'ONLINE'",
                1,
            )],
            &[
                (ACTIVE, 1),
                (
                    "SELECT count(*) FROM zone_events WHERE type = 'NODE_OFFLINE'",
                    1,
                ),
            ],
        ),
        (
            &[(
                "hydro/gh-t/zn-a/nd-1/status",
                r#"{"status":"ONLINE","ts":1800000001}"#,
            )],
            &[
                (
                    "SELECT count(*) FROM alerts WHERE type = 'node_offline' AND status = 'RESOLVED' AND resolved_at IS NOT NULL",
                    1,
                ),
                (
                    "SELECT count(*) FROM zone_events WHERE type = 'NODE_ONLINE' AND payload_json->>'node_uid' = 'nd-1'",
                    1,
                ),
            ],
            &[(ACTIVE, 0)],
        ),
        // The lwt raises it again.
        (
            &[("hydro/gh-t/zn-a/nd-1/lwt", "offline")],
            &[(ACTIVE, 1)],
            &[],
        ),
        // An event becomes a zone event of the node's zone; an error too; the
        // event brings the node back (it was OFFLINE after the lwt).
        (
            &[
                (
                    "hydro/gh-t/zn-a/nd-1/level/event",
                    r#"{"event_code":"level switch-changed","level":1}"#,
                ),
                (
                    "hydro/gh-t/zn-a/nd-1/error",
                    r#"{"level":"ERROR","component":"ph","error_code":"E7","message":"probe","ts":1800000000123,"details":{"raw":7}}"#,
                ),
            ],
            &[
                (
                    "SELECT count(*) FROM zone_events e JOIN zones z ON z.id = e.zone_id WHERE z.uid = 'zn-a' AND e.type = 'LEVEL_SWITCH_CHANGED' AND e.payload_json->>'level' = '1'",
                    1,
                ),
                (
                    "SELECT count(*) FROM zone_events WHERE type = 'NODE_ERROR' AND payload_json->>'error_code' = 'E7' AND payload_json->>'ts' = '1800000000123' AND payload_json->'details'->>'raw' = '7'",
                    1,
                ),
                (ACTIVE, 0),
            ],
            &[(
                "SELECT count(*) FROM nodes WHERE uid = 'nd-1' AND status = 'ONLINE'",
                1,
            )],
        ),
    ];
    for (published, reached, held) in steps {
        for (topic, payload) in published {
            publish(&nodes, topic, *payload).await;
        }
        world.assert_reached(reached).await;
        world.assert_counts(held).await;
    }
}

#[tokio::test]
async fn status_changes_apply_in_arrival_order_within_and_across_batches() {
    let world = World::new().await;
    // A long flush window: the flaps below most likely share one batch.
    world
        .start(
            "hl-a",
            &[("TELEMETRY_FLUSH_MS", "1500"), ("HISTORY_WRITERS", "4")],
        )
        .await;
    let nodes = world.publisher().await;
    let status = |s: &str, ts: i64| format!(r#"{{"status":"{s}","ts":{ts}}}"#);
    let flaps = ["OFFLINE", "ONLINE", "OFFLINE", "ONLINE", "OFFLINE"];
    for (i, s) in flaps.iter().enumerate() {
        publish(
            &nodes,
            "hydro/gh-t/zn-a/nd-1/status",
            status(s, 1_800_000_000 + i as i64),
        )
        .await;
    }
    // Every change is an event, in order; the last status stays, with its alert.
    let events = "SELECT count(*) FROM zone_events WHERE type IN ('NODE_ONLINE', 'NODE_OFFLINE')";
    assert_eq!(world.wait_count(events, flaps.len() as i64).await, 5);
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT type FROM zone_events WHERE type IN ('NODE_ONLINE', 'NODE_OFFLINE') ORDER BY id",
    )
    .fetch_all(&world.db.pool)
    .await
    .unwrap();
    assert_eq!(
        order,
        flaps.map(|s| format!("NODE_{s}")).to_vec(),
        "events in arrival order"
    );
    world
        .assert_counts(&[
            (
                "SELECT count(*) FROM nodes WHERE uid = 'nd-1' AND status = 'OFFLINE'",
                1,
            ),
            (ACTIVE, 1),
        ])
        .await;
}
