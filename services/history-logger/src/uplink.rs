//! One uplink message, checked against the contract: its topic says what it
//! is and whose it is, its payload is decoded by that kind. A refusal carries
//! a bounded reason label (for `telemetry_dropped_total{reason}` and the
//! dead-letter record) and a detail for humans.
//!
//! Hellos and the uplink of unbound nodes (the temp namespace) belong to
//! device-registry: a hello is not an uplink topic here, and a temp-namespace
//! message decodes to [`Body::Unbound`] whatever its payload.

use proto::payloads::{
    Heartbeat, MAX_PAYLOAD_BYTES, MetricType, NodeError, NodeEvent, PayloadError, Status, Telemetry,
};
use proto::topics::{NodeTopic, Topic, TopicKind};
use serde_json::Value;

/// The longest zone event type the schema accepts.
const MAX_EVENT_TYPE: usize = 64;

/// 9999-12-31T23:59:59Z: a later `ts` is a corrupt clock, not a reading.
const MAX_TS: i64 = 253_402_300_799;

/// The one last will the firmware sets (`mqtt_manager.c`:
/// `last_will.msg = "offline"`), byte for byte. Anything else on an `lwt`
/// topic is not the broker speaking for a vanished node.
pub const LWT_PAYLOAD: &[u8] = b"offline";

/// What decoding checks beyond the shape of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// A reading whose `ts` is more than this many seconds after it was
    /// received is refused (`future_ts`): `HISTORY_MAX_FUTURE_SKEW_SEC`.
    pub max_future_skew_sec: i64,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            max_future_skew_sec: crate::settings::DEFAULT_MAX_FUTURE_SKEW_SEC,
        }
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Telemetry(Telemetry),
    Status(Status),
    /// The broker's last will for the node: it is gone.
    Lwt,
    Heartbeat(Heartbeat),
    Event(NodeEvent),
    Error(NodeError),
    /// A message of a node not bound yet (temp namespace): device-registry's,
    /// acknowledged and counted here, never stored nor dead-lettered.
    Unbound,
}

/// A decoded uplink message.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    pub topic: NodeTopic,
    pub body: Body,
}

/// Why a message is not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// Bounded label: `bad_topic`, `oversized`, `invalid_json`,
    /// `invalid_field`, `unknown_metric`, `non_finite_value`, `future_ts`,
    /// `out_of_range`, `invalid_lwt` (decoding); `node_id_not_found`,
    /// `zone_id_not_found`, `greenhouse_mismatch`, `zone_mismatch`,
    /// `unknown_channel`, `metric_mismatch`, `same_second`, `db_rejected`
    /// (writing, against the database).
    pub reason: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decodes a message received at `received_at` (seconds; replaces the `ts` of
/// a node whose clock is not set, and is what a future `ts` is measured
/// from, so a redelivery decodes the same).
pub fn decode(
    topic: &str,
    payload: &[u8],
    received_at: i64,
    checks: Checks,
) -> Result<Uplink, Rejection> {
    let parsed = Topic::parse(topic).map_err(|e| Rejection::new("bad_topic", e.problem))?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(refusal(&PayloadError::TooLarge(payload.len()), payload));
    }
    let node_topic = match parsed {
        Topic::Node(t) => t,
        Topic::GlobalNodeHello
        | Topic::ConfigUpdate { .. }
        | Topic::TimeRequest
        | Topic::TimeResponse => {
            return Err(Rejection::new("bad_topic", "not an uplink topic"));
        }
    };
    if node_topic.is_temp() {
        return Ok(Uplink {
            topic: node_topic,
            body: Body::Unbound,
        });
    }
    let body = match node_topic.kind {
        TopicKind::Telemetry => {
            let t = Telemetry::decode(payload, received_at).map_err(|e| refusal(&e, payload))?;
            if t.ts > MAX_TS {
                return Err(Rejection::new("invalid_field", "ts is after the year 9999"));
            }
            let ahead = t.ts.saturating_sub(received_at);
            if ahead > checks.max_future_skew_sec {
                return Err(Rejection::new(
                    "future_ts",
                    format!(
                        "ts is {ahead} s after the message arrived (at most {} s allowed)",
                        checks.max_future_skew_sec
                    ),
                ));
            }
            let range = t.metric_type.physical_range();
            if !range.contains(&t.value) {
                return Err(Rejection::new(
                    "out_of_range",
                    format!(
                        "{} {} is outside {}..={}",
                        t.metric_type.as_str(),
                        t.value,
                        range.start(),
                        range.end()
                    ),
                ));
            }
            Body::Telemetry(t)
        }
        TopicKind::Status => {
            Body::Status(Status::decode(payload).map_err(|e| refusal(&e, payload))?)
        }
        // Only the firmware's own will marks a node gone: an empty retained
        // message (someone clearing the topic) or any other text is not one.
        TopicKind::Lwt if payload == LWT_PAYLOAD => Body::Lwt,
        TopicKind::Lwt => {
            return Err(Rejection::new(
                "invalid_lwt",
                format!("a last will must be `offline`, got {} bytes", payload.len()),
            ));
        }
        TopicKind::Heartbeat => {
            Body::Heartbeat(Heartbeat::decode(payload).map_err(|e| refusal(&e, payload))?)
        }
        TopicKind::Event => {
            let event = NodeEvent::decode(payload).map_err(|e| refusal(&e, payload))?;
            if event.zone_event_type().len() > MAX_EVENT_TYPE {
                return Err(Rejection::new(
                    "invalid_field",
                    "event_code makes a zone event type longer than 64 characters",
                ));
            }
            Body::Event(event)
        }
        TopicKind::Error => {
            Body::Error(NodeError::decode(payload).map_err(|e| refusal(&e, payload))?)
        }
        TopicKind::NodeHello
        | TopicKind::Command
        | TopicKind::CommandResponse
        | TopicKind::Config
        | TopicKind::ConfigReport => {
            return Err(Rejection::new("bad_topic", "not an uplink kind"));
        }
    };
    Ok(Uplink {
        topic: node_topic,
        body,
    })
}

/// A finer label than [`PayloadError::reason`]: JSON that is not JSON at all,
/// an unknown metric and a non-finite value are told apart from wrong fields.
fn refusal(e: &PayloadError, payload: &[u8]) -> Rejection {
    let reason = match e {
        PayloadError::TooLarge(_) => "oversized",
        PayloadError::Field { field: "value", .. } => "non_finite_value",
        PayloadError::Field { .. } => "invalid_field",
        PayloadError::Json(message) => match serde_json::from_slice::<Value>(payload) {
            // serde_json refuses a number beyond f64 (`1e400`) outright, and
            // `NaN` / `Infinity` (what some JSON writers emit) are not JSON.
            Err(_) if message.contains("number out of range") || non_finite_literal(payload) => {
                "non_finite_value"
            }
            Err(_) => "invalid_json",
            Ok(v) => match v.get("metric_type") {
                Some(m @ Value::String(_))
                    if serde_json::from_value::<MetricType>(m.clone()).is_err() =>
                {
                    "unknown_metric"
                }
                _ => "invalid_field",
            },
        },
    };
    Rejection::new(reason, e.to_string())
}

/// Whether `value` is given as `NaN`, `Infinity` or `-Infinity`, which JSON
/// has no room for.
fn non_finite_literal(payload: &[u8]) -> bool {
    let text = String::from_utf8_lossy(payload);
    let Some(at) = text.find("\"value\"") else {
        return false;
    };
    let rest = text[at + "\"value\"".len()..].trim_start();
    let Some(rest) = rest.strip_prefix(':') else {
        return false;
    };
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('+'))
        .unwrap_or(rest);
    ["NaN", "nan", "Infinity", "inf"]
        .iter()
        .any(|word| rest.starts_with(word))
}

#[cfg(test)]
mod tests {
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
}
