//! The unit tests of `uplink`.

use super::*;

const T: &str = "hydro/gh-1/zn-1/nd-ph-1/ph_sensor/telemetry";

fn reason(topic: &str, payload: &[u8]) -> &'static str {
    decode(topic, payload, 1_800_000_000, Checks::default())
        .unwrap_err()
        .reason
}

#[test]
fn good_messages_of_every_kind() {
    let cases: &[(&str, &[u8])] = &[
        (T, br#"{"metric_type":"PH","value":6.5,"ts":1737979200}"#),
        (
            "hydro/gh-1/zn-1/nd-ec-1/ec_sensor/telemetry",
            br#"{"metric_type":"EC","value":1.2,"ts":1737979200,"tds":600,"health":{"status":"ok","error_count":0}}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/status",
            br#"{"status":"OFFLINE","ts":1}"#,
        ),
        ("hydro/gh-1/zn-1/nd-ph-1/lwt", b"offline"),
        (
            "hydro/gh-1/zn-1/nd-ph-1/heartbeat",
            br#"{"uptime":1,"free_heap":2}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/level/event",
            br#"{"event_code":"level_low"}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/error",
            br#"{"level":"ERROR","component":"ph","error_code":"E1","message":"m"}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/error",
            br#"{"level":"ERROR","component":"ph","error_code":"E1","message":"m","ts":1800000000123,"details":{"raw":7}}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/status",
            br#"{"status":"RESTARTING","ts":1}"#,
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/heartbeat",
            br#"{"uptime":1,"free_heap":2,"fw_version":"2.0.1"}"#,
        ),
    ];
    for (topic, payload) in cases {
        decode(topic, payload, 1_800_000_000, Checks::default())
            .unwrap_or_else(|e| panic!("{topic}: {e}"));
    }
}

#[test]
fn unbound_nodes_are_not_refused_whatever_they_send() {
    for (topic, payload) in [
        (
            "hydro/gh-temp/zn-temp/esp32-aa/ph_sensor/telemetry",
            &b"not even json"[..],
        ),
        (
            "hydro/gh-temp/zn-temp/esp32-aa/status",
            br#"{"status":"ONLINE","ts":1}"#,
        ),
        ("hydro/gh-temp/zn-temp/esp32-aa/lwt", b"offline"),
    ] {
        let u = decode(topic, payload, 0, Checks::default()).unwrap();
        assert_eq!(u.body, Body::Unbound, "{topic}");
        assert_eq!(u.topic.node, "esp32-aa");
    }
}

#[test]
fn every_bad_input_class_has_its_reason() {
    assert_eq!(reason(T, b"not json"), "invalid_json");
    assert_eq!(
        reason(T, br#"{"metric_type":"PH","value":6.5}"#),
        "invalid_field"
    );
    assert_eq!(
        reason(T, br#"{"metric_type":"PH","value":1,"ts":1,"x":1}"#),
        "invalid_field"
    );
    assert_eq!(
        reason(T, br#"{"metric_type":"PRESSURE","value":1,"ts":1}"#),
        "unknown_metric"
    );
    assert_eq!(
        reason(T, br#"{"metric_type":"PH","value":1e400,"ts":1}"#),
        "non_finite_value"
    );
    assert_eq!(
        reason(T, br#"{"metric_type":"PH","value":1,"ts":253402300800}"#),
        "invalid_field"
    );
    assert_eq!(reason(T, &vec![b' '; MAX_PAYLOAD_BYTES + 1]), "oversized");
    assert_eq!(reason("hydro/gh/zn/nd/telemetry", b"{}"), "bad_topic");
    assert_eq!(reason("hydro/gh/zn/nd/ch/command", b"{}"), "bad_topic");
    assert_eq!(reason("nodes/nd/config/update", b"{}"), "bad_topic");
    // Hellos, config reports and time requests are not this service's uplink.
    assert_eq!(
        reason("hydro/node_hello", br#"{"hardware_id":"aa"}"#),
        "bad_topic"
    );
    assert_eq!(
        reason(
            "hydro/gh-1/zn-1/nd-1/node_hello",
            br#"{"hardware_id":"aa"}"#
        ),
        "bad_topic"
    );
    assert_eq!(
        reason("hydro/gh-1/zn-1/nd-1/config_report", b"{}"),
        "bad_topic"
    );
    assert_eq!(reason("hydro/time/request", b"{}"), "bad_topic");
    let long = format!(r#"{{"event_code":"{}"}}"#, "a".repeat(65));
    assert_eq!(
        reason("hydro/g/z/n/c/event", long.as_bytes()),
        "invalid_field"
    );
}

#[test]
fn unset_clock_gets_the_receive_time() {
    let u = decode(
        T,
        br#"{"metric_type":"PH","value":6.5,"ts":5}"#,
        1_800_000_000,
        Checks::default(),
    )
    .unwrap();
    match u.body {
        Body::Telemetry(t) => assert_eq!(t.ts, 1_800_000_000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reading_too_far_in_the_future_is_refused() {
    let now = 1_800_000_000;
    let at = |ts: i64| format!(r#"{{"metric_type":"PH","value":6.5,"ts":{ts}}}"#);
    let checks = Checks {
        max_future_skew_sec: 300,
    };
    for ok in [now - 3600, now, now + 300] {
        decode(T, at(ok).as_bytes(), now, checks).unwrap();
    }
    let e = decode(T, at(now + 301).as_bytes(), now, checks).unwrap_err();
    assert_eq!(e.reason, "future_ts", "{e}");
    // The year 9999 is still refused as a corrupt field.
    assert_eq!(reason(T, at(253_402_300_800).as_bytes()), "invalid_field");
    // Measured from the receive time, so a redelivery decodes the same.
    decode(T, at(now + 301).as_bytes(), now + 1, checks).unwrap();
}

#[test]
fn values_outside_the_physical_range_are_refused() {
    let ph = |v: &str| format!(r#"{{"metric_type":"PH","value":{v},"ts":1800000000}}"#);
    for bad in ["-5", "14.01", "1e308", "-0.0001"] {
        assert_eq!(reason(T, ph(bad).as_bytes()), "out_of_range", "{bad}");
    }
    for good in ["0", "14", "6.5", "-0.0"] {
        decode(T, ph(good).as_bytes(), 1_800_000_000, Checks::default())
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    let ec = br#"{"metric_type":"EC","value":20.5,"ts":1800000000}"#;
    assert_eq!(reason(T, ec), "out_of_range");
    let hot = br#"{"metric_type":"TEMPERATURE","value":126,"ts":1800000000}"#;
    assert_eq!(reason(T, hot), "out_of_range");
    let wet = br#"{"metric_type":"HUMIDITY","value":100.5,"ts":1800000000}"#;
    assert_eq!(reason(T, wet), "out_of_range");
}

#[test]
fn non_finite_values_are_told_apart_from_bad_json() {
    for bad in ["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400"] {
        let p = format!(r#"{{"metric_type":"PH","value": {bad},"ts":1800000000}}"#);
        assert_eq!(reason(T, p.as_bytes()), "non_finite_value", "{bad}");
    }
    assert_eq!(
        reason(T, br#"{"metric_type":"PH","value":Nope,"ts":1}"#),
        "invalid_json"
    );
}

#[test]
fn only_the_firmwares_last_will_marks_a_node_gone() {
    let lwt = "hydro/gh-1/zn-1/nd-ph-1/lwt";
    let u = decode(lwt, b"offline", 0, Checks::default()).unwrap();
    assert_eq!(u.body, Body::Lwt);
    for bad in [
        &b""[..],
        b"OFFLINE",
        b"offline\0",
        b" offline",
        br#"{"status":"OFFLINE"}"#,
        b"online",
    ] {
        assert_eq!(reason(lwt, bad), "invalid_lwt", "{bad:?}");
    }
}

#[test]
fn a_stored_message_decodes_by_its_stored_kind() {
    let topics = [
        (
            T,
            TopicKind::Telemetry,
            br#"{"metric_type":"PH","value":6.5,"ts":1737979200}"#.as_slice(),
        ),
        (
            "hydro/gh-1/zn-1/nd-ph-1/lwt",
            TopicKind::Lwt,
            b"offline".as_slice(),
        ),
        (
            "hydro/gh-temp/zn-temp/esp-1/heartbeat",
            TopicKind::Heartbeat,
            b"{".as_slice(),
        ),
    ];
    for (topic, kind, payload) in topics {
        assert_eq!(
            decode_stored(kind, topic, payload, 1_800_000_000, Checks::default()),
            decode(topic, payload, 1_800_000_000, Checks::default()),
            "{topic}"
        );
    }
    let refused = |kind, topic: &str| {
        decode_stored(kind, topic, b"{}", 1_800_000_000, Checks::default())
            .unwrap_err()
            .reason
    };
    assert_eq!(refused(TopicKind::Status, T), "bad_topic");
    assert_eq!(
        refused(TopicKind::Telemetry, "hydro/gh-1/zn-1/nd-1/status"),
        "bad_topic"
    );
    assert_eq!(
        refused(TopicKind::Status, "hydro/gh-1/zn-1/nd-1/status"),
        "invalid_field"
    );
}
