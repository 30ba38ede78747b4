//! The unit tests of the batch plan.

use chrono::{DateTime, Utc};
use common::store::nodes::Placement;
use proto::payloads::NodeState;

use super::plan::{BatchPlan, Decoded, plan};
use crate::node_state::What;
use crate::resolver::Resolver;
use crate::uplink::{self, Checks};

const NOW: i64 = 1_800_000_000;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(NOW * 1000 + ms).unwrap()
}

/// Node `nd-1` (id 1) in gh-1/zn-1 (zone id 10) with a PH sensor and a pump;
/// node `nd-2` (id 2) in the same zone with an EC sensor; zone zn-2 (id 20)
/// holds no node of these.
fn places() -> Resolver {
    let mut r = Resolver::default();
    r.remember_zone("zn-1", 10);
    r.remember_zone("zn-2", 20);
    let node = |uid: &str, id, channel: &str, metric: &str| Placement {
        uid: uid.into(),
        id,
        zone_id: Some(10),
        zone_uid: Some("zn-1".into()),
        greenhouse_uid: Some("gh-1".into()),
        channels: vec![channel.into(), "pump".into()],
        metrics: vec![Some(metric.into()), None],
    };
    r.remember(node("nd-1", 1, "ph", "PH"));
    r.remember(node("nd-2", 2, "ec", "EC"));
    r
}

/// Messages (topic, payload) in arrival order, `ms` apart.
fn batch(messages: &[(&str, &str)]) -> Vec<Decoded<'static>> {
    messages
        .iter()
        .enumerate()
        .map(|(i, (topic, payload))| Decoded {
            index: i,
            broker: "mqtt1",
            at: at(i as i64),
            uplink: uplink::decode(topic, payload.as_bytes(), NOW, Checks::default()),
        })
        .collect()
}

fn reasons(plan: &BatchPlan<'_>) -> Vec<(usize, &'static str)> {
    plan.rejected.iter().map(|(i, r)| (*i, r.reason)).collect()
}

/// The plan of `batch` against [`places`]; it refuses none of it.
fn accepted<'a>(batch: &'a [Decoded<'a>]) -> BatchPlan<'a> {
    let p = plan(batch, &places());
    assert!(p.rejected.is_empty(), "{:?}", reasons(&p));
    p
}

const PH: &str = r#"{"metric_type":"PH","value":6.5,"ts":1800000000}"#;

#[test]
fn readings_become_samples_in_arrival_order() {
    let b = batch(&[
        (
            "hydro/gh-1/zn-1/nd-2/ec/telemetry",
            r#"{"metric_type":"EC","value":1.5,"ts":1799999999,"raw":7,"stable":true}"#,
        ),
        ("hydro/gh-1/zn-1/nd-1/ph/telemetry", PH),
    ]);
    let p = accepted(&b);
    let got: Vec<_> = p
        .samples
        .iter()
        .map(|s| {
            (
                s.node_id,
                s.zone_id,
                s.channel.as_str(),
                s.metric_type,
                s.value,
                s.raw,
                s.stable,
                s.ts,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                2,
                Some(10),
                "ec",
                "EC",
                1.5,
                Some(7),
                Some(true),
                1_799_999_999
            ),
            (1, Some(10), "ph", "PH", 6.5, None, None, NOW),
        ]
    );
    assert_eq!(p.sample_items, vec![0, 1]);
    // Each reading also says its node is alive on its broker.
    let what: Vec<_> = p
        .happenings
        .iter()
        .map(|h| (h.target.node_id, h.broker, h.what))
        .collect();
    assert_eq!(
        what,
        vec![
            (2, "mqtt1", What::Uplink("telemetry")),
            (1, "mqtt1", What::Uplink("telemetry"))
        ]
    );
}

#[test]
fn statuses_and_last_wills_are_happenings_in_arrival_order() {
    let b = batch(&[
        (
            "hydro/gh-1/zn-1/nd-1/status",
            r#"{"status":"ONLINE","ts":1800000000}"#,
        ),
        ("hydro/gh-1/zn-1/nd-1/lwt", "offline"),
        (
            "hydro/gh-1/zn-1/nd-2/status",
            r#"{"status":"RESTARTING","ts":5}"#,
        ),
    ]);
    let p = accepted(&b);
    assert!(p.samples.is_empty() && p.events.is_empty());
    let what: Vec<_> = p
        .happenings
        .iter()
        .map(|h| (h.target.node_id, h.target.zone_id, h.at, h.what))
        .collect();
    assert_eq!(
        what,
        vec![
            (
                1,
                Some(10),
                at(0),
                What::Status {
                    state: NodeState::Online,
                    ts: NOW
                }
            ),
            (1, Some(10), at(1), What::Lwt),
            (
                2,
                Some(10),
                at(2),
                What::Status {
                    state: NodeState::Restarting,
                    ts: 5
                }
            ),
        ]
    );
}

#[test]
fn the_latest_heartbeat_of_each_node_counts() {
    let b = batch(&[
        (
            "hydro/gh-1/zn-1/nd-2/heartbeat",
            r#"{"uptime":1,"free_heap":2,"rssi":-50}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-1/heartbeat",
            r#"{"uptime":3,"free_heap":4}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-2/heartbeat",
            r#"{"uptime":5,"free_heap":6,"fw_version":"2.0.1"}"#,
        ),
    ]);
    let p = plan(&b, &places());
    let got: Vec<_> = p
        .heartbeats
        .iter()
        .map(|h| {
            (
                h.node_id,
                h.at,
                h.uptime_seconds,
                h.free_heap_bytes,
                h.rssi,
                h.fw_version.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, at(1), 3, 4, None, None),
            (2, at(2), 5, 6, None, Some("2.0.1"))
        ]
    );
    assert_eq!(
        p.happenings.len(),
        3,
        "each heartbeat says its node is alive"
    );
    assert!(
        p.happenings
            .iter()
            .all(|h| h.what == What::Uplink("heartbeat"))
    );
}

#[test]
fn events_and_errors_become_zone_events() {
    let b = batch(&[
        (
            "hydro/gh-1/zn-1/nd-1/pump/event",
            r#"{"event_code":"level-switch changed","level":3}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-1/error",
            r#"{"level":"ERROR","component":"ph","error_code":"E1","message":"m"}"#,
        ),
    ]);
    let p = plan(&b, &places());
    let kinds: Vec<_> = p
        .events
        .iter()
        .map(|e| (e.zone_id, e.kind.as_ref(), e.at))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Some(10), "LEVEL_SWITCH_CHANGED", Some(at(0))),
            (Some(10), "NODE_ERROR", Some(at(1)))
        ]
    );
    assert_eq!(
        p.events[0].payload,
        serde_json::json!({"event_code": "level-switch changed", "level": 3, "node_uid": "nd-1", "channel": "pump"})
    );
    assert_eq!(p.events[1].payload["node_uid"], "nd-1");
    assert_eq!(p.events[1].payload["error_code"], "E1");
    let what: Vec<_> = p.happenings.iter().map(|h| h.what).collect();
    assert_eq!(what, vec![What::Uplink("event"), What::Uplink("error")]);
}

#[test]
fn every_refusal_has_its_reason() {
    let b = batch(&[
        ("hydro/gh-1/zn-1/nd-1/ph/telemetry", "{"),
        ("hydro/gh-1/zn-9/nd-1/ph/telemetry", PH),
        ("hydro/gh-1/zn-1/nd-9/ph/telemetry", PH),
        ("hydro/gh-2/zn-1/nd-1/ph/telemetry", PH),
        ("hydro/gh-1/zn-2/nd-1/ph/telemetry", PH),
        ("hydro/gh-1/zn-1/nd-1/orp/telemetry", PH),
        ("hydro/gh-1/zn-1/nd-2/ec/telemetry", PH),
        ("hydro/gh-1/zn-1/nd-1/pump/telemetry", PH),
        (
            "hydro/gh-1/zn-2/nd-1/status",
            r#"{"status":"ONLINE","ts":1}"#,
        ),
        ("hydro/gh-1/zn-1/nd-1/ph/telemetry", PH),
    ]);
    let p = plan(&b, &places());
    assert_eq!(
        reasons(&p),
        vec![
            (0, "invalid_json"),
            (1, "zone_id_not_found"),
            (2, "node_id_not_found"),
            (3, "greenhouse_mismatch"),
            (4, "zone_mismatch"),
            (5, "unknown_channel"),
            (6, "metric_mismatch"),
            (7, "metric_mismatch"),
            (8, "zone_mismatch"),
        ]
    );
    assert_eq!(p.rejected[1].1.detail, "no zone `zn-9`");
    assert_eq!(p.rejected[2].1.detail, "no node `nd-9`");
    assert_eq!(
        p.rejected[4].1.detail,
        "node `nd-1` is in gh-1/zn-1, not gh-1/zn-2"
    );
    assert_eq!(p.rejected[5].1.detail, "node `nd-1` has no channel `orp`");
    assert_eq!(
        p.rejected[6].1.detail,
        "channel `ec` of node `nd-2` measures EC, not PH"
    );
    assert_eq!(
        p.rejected[7].1.detail,
        "channel `pump` of node `nd-1` measures no metric, not PH"
    );
    // Only the last, fitting reading is planned.
    assert_eq!(p.sample_items, vec![9]);
    assert_eq!(p.happenings.len(), 1);
}

#[test]
fn a_last_will_fits_wherever_it_was_set_and_unbound_nodes_are_skipped() {
    let b = batch(&[
        ("hydro/gh-1/zn-2/nd-1/lwt", "offline"),
        ("hydro/gh-temp/zn-temp/esp-1/ph/telemetry", PH),
    ]);
    let p = accepted(&b);
    let what: Vec<_> = p
        .happenings
        .iter()
        .map(|h| (h.target.zone_id, h.what))
        .collect();
    // The zone is the topic's, as resolved.
    assert_eq!(what, vec![(Some(20), What::Lwt)]);
    assert!(p.samples.is_empty() && p.events.is_empty() && p.heartbeats.is_empty());
}
