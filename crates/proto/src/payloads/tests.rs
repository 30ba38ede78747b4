//! Each payload decoded, refused and encoded as the contract says.

use super::*;

#[test]
fn telemetry_minimal_and_full() {
    let t = Telemetry::decode(br#"{"metric_type":"PH","value":6.5,"ts":1737979200}"#, 0).unwrap();
    assert_eq!(t.metric_type, MetricType::Ph);
    assert_eq!(t.ts, 1_737_979_200);
    let full = br#"{"metric_type":"WATER_LEVEL","value":0.4,"ts":1737979200,"unit":"m","raw":1023,"stub":false,"stable":true,"flow_active":false,"corrections_allowed":true}"#;
    assert_eq!(Telemetry::decode(full, 0).unwrap().raw, Some(1023));
}

#[test]
fn telemetry_rejections() {
    let cases: &[(&[u8], &str)] = &[
        (br#"{"metric_type":"PH","value":6.5,"ts":1737979200,"x":1}"#, "invalid_json"),
        (br#"{"metric_type":"PRESSURE","value":6.5,"ts":1737979200}"#, "invalid_json"),
        (br#"{"metric_type":"PH","value":"6.5","ts":1737979200}"#, "invalid_json"),
        (br#"{"metric_type":"PH","ts":1737979200}"#, "invalid_json"),
        (br#"{"metric_type":"PH","value":6.5,"ts":1.5}"#, "invalid_json"),
        (b"not json", "invalid_json"),
        (br#"{"metric_type":"PH","value":6.5,"ts":1737979200,"unit":"123456789012345678901234567890123"}"#, "invalid_field"),
    ];
    for (bytes, reason) in cases {
        let err = Telemetry::decode(bytes, 0).unwrap_err();
        assert_eq!(err.reason(), *reason, "{}", String::from_utf8_lossy(bytes));
    }
    let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        Telemetry::decode(&big, 0).unwrap_err().reason(),
        "oversized"
    );
}

#[test]
fn telemetry_non_finite_value_is_refused() {
    // JSON has no NaN literal, but a number too large for f64 becomes infinite.
    let err = Telemetry::decode(br#"{"metric_type":"PH","value":1e400,"ts":1737979200}"#, 0);
    assert!(err.is_err());
}

#[test]
fn telemetry_unset_clock_gets_receive_time() {
    let t = Telemetry::decode(
        br#"{"metric_type":"EC","value":1.2,"ts":42}"#,
        1_800_000_000,
    )
    .unwrap();
    assert_eq!(t.ts, 1_800_000_000);
}

#[test]
fn command_validation() {
    let ok = format!(
        r#"{{"cmd_id":"c-1","cmd":"run_pump","params":{{"duration_ms":30000}},"ts":1737979200,"sig":"{}"}}"#,
        "a".repeat(64)
    );
    assert!(Command::decode(ok.as_bytes()).is_ok());
    let bad_id = ok.replace("c-1", "c 1");
    assert_eq!(
        Command::decode(bad_id.as_bytes()).unwrap_err(),
        PayloadError::field("cmd_id", "must match ^[A-Za-z0-9_-]{1,128}$")
    );
    let bad_sig = ok.replace(&"a".repeat(64), &"A".repeat(64));
    assert!(Command::decode(bad_sig.as_bytes()).is_err());
    let no_sig = r#"{"cmd_id":"c-1","cmd":"run_pump","params":{},"ts":1737979200}"#;
    assert!(Command::decode(no_sig.as_bytes()).is_err());
    assert!(validate_cmd_id(&"x".repeat(128)).is_ok());
    assert!(validate_cmd_id(&"x".repeat(129)).is_err());
    assert!(validate_cmd_name("").is_err());
}

#[test]
fn response_statuses() {
    for s in [
        "ACK",
        "DONE",
        "ERROR",
        "INVALID",
        "BUSY",
        "NO_EFFECT",
        "TIMEOUT",
    ] {
        let r = format!(r#"{{"cmd_id":"c1","status":"{s}","ts":1737979200000}}"#);
        assert!(CommandResponse::decode(r.as_bytes()).is_ok(), "{s}");
    }
    assert!(CommandResponse::decode(br#"{"cmd_id":"c1","status":"SENT","ts":1}"#).is_err());
}

#[test]
fn heartbeat_rssi_bounds() {
    assert!(Heartbeat::decode(br#"{"uptime":3600,"free_heap":102000,"rssi":-62}"#).is_ok());
    assert!(Heartbeat::decode(br#"{"uptime":3600,"free_heap":102000}"#).is_ok());
    assert!(Heartbeat::decode(br#"{"uptime":3600,"free_heap":102000,"rssi":5}"#).is_err());
    assert!(Heartbeat::decode(br#"{"uptime":-1,"free_heap":102000}"#).is_err());
}

#[test]
fn event_type_normalisation() {
    let e = NodeEvent::decode(br#"{"event_code":"level_switch_changed","level":1}"#).unwrap();
    assert_eq!(e.zone_event_type(), "LEVEL_SWITCH_CHANGED");
    assert_eq!(e.fields["level"], 1);
    let e = NodeEvent::decode(br#"{"event_code":"pump--over  current!"}"#).unwrap();
    assert_eq!(e.zone_event_type(), "PUMP_OVER_CURRENT_");
    assert!(NodeEvent::decode(br#"{"event_code":" "}"#).is_err());
}

#[test]
fn status_error_hello_config() {
    assert_eq!(
        Status::decode(br#"{"status":"ONLINE","ts":1710001555}"#)
            .unwrap()
            .status,
        NodeState::Online
    );
    assert!(Status::decode(br#"{"status":"SLEEPING","ts":1}"#).is_err());
    assert!(
        NodeError::decode(
            br#"{"level":"WARNING","component":"ph","error_code":"E1","message":"drift"}"#
        )
        .is_ok()
    );
    assert!(
        NodeError::decode(br#"{"level":"FATAL","component":"ph","error_code":"E1","message":"m"}"#)
            .is_err()
    );
    let h =
        NodeHello::decode(br#"{"hardware_id":"esp32-aa","node_type":"ph","capabilities":["ph"]}"#)
            .unwrap();
    assert_eq!(h.capabilities, ["ph"]);
    assert!(
        ConfigUpdate::decode(br#"{"mqtt_broker":"tcp://x","broker_id":"m","fallback":[],"ts":1}"#)
            .is_err()
    );
}

#[test]
fn physical_ranges_hold_the_specified_bounds() {
    assert_eq!(MetricType::Ph.physical_range(), 0.0..=14.0);
    assert_eq!(MetricType::Ec.physical_range(), 0.0..=20.0);
    assert_eq!(MetricType::Temperature.physical_range(), -40.0..=125.0);
    assert_eq!(MetricType::Humidity.physical_range(), 0.0..=100.0);
    for m in MetricType::ALL {
        let r = m.physical_range();
        assert!(r.start() < r.end(), "{m:?}");
        assert!(
            !r.contains(&f64::NAN) && !r.contains(&f64::INFINITY),
            "{m:?}"
        );
    }
}
