//! One uplink message, checked against the contract: its topic says what it
//! is and whose it is, its payload is decoded by that kind. A refusal carries
//! a bounded reason label (for `telemetry_dropped_total{reason}` and the
//! dead-letter record) and a detail for humans.
//!
//! Hellos and the uplink of unbound nodes (the temp namespace) belong to
//! device-registry: a hello is not an uplink topic here, and a temp-namespace
//! message decodes to [`Body::Unbound`] whatever its payload.

use common::payloads::{
    Heartbeat, MAX_PAYLOAD_BYTES, MetricType, NodeError, NodeEvent, PayloadError, Status, Telemetry,
};
use common::topics::{NodeTopic, Topic, TopicKind};
use serde_json::Value;

/// The longest zone event type the schema accepts.
const MAX_EVENT_TYPE: usize = 64;

/// 9999-12-31T23:59:59Z: a later `ts` is a corrupt clock, not a reading.
const MAX_TS: i64 = 253_402_300_799;

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
    /// `invalid_field`, `unknown_metric`, `non_finite_value`,
    /// `node_id_not_found`, `zone_id_not_found`, `db_rejected`.
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
/// a node whose clock is not set, so a redelivery decodes the same).
pub fn decode(topic: &str, payload: &[u8], received_at: i64) -> Result<Uplink, Rejection> {
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
            Body::Telemetry(t)
        }
        TopicKind::Status => {
            Body::Status(Status::decode(payload).map_err(|e| refusal(&e, payload))?)
        }
        // The broker publishes `offline`; whatever the payload, a last will
        // means the node is gone.
        TopicKind::Lwt => Body::Lwt,
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
            // serde_json refuses a number beyond f64 (`1e400`) outright.
            Err(_) if message.contains("number out of range") => "non_finite_value",
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

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "hydro/gh-1/zn-1/nd-ph-1/ph_sensor/telemetry";

    fn reason(topic: &str, payload: &[u8]) -> &'static str {
        decode(topic, payload, 1_800_000_000).unwrap_err().reason
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
            decode(topic, payload, 0).unwrap_or_else(|e| panic!("{topic}: {e}"));
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
            let u = decode(topic, payload, 0).unwrap();
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
        )
        .unwrap();
        match u.body {
            Body::Telemetry(t) => assert_eq!(t.ts, 1_800_000_000),
            other => panic!("{other:?}"),
        }
    }
}
