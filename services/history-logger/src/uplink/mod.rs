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
use proto::topics::{NodeTopic, Topic, TopicError, TopicKind};
use serde_json::Value;

/// The longest zone event type the schema accepts.
const MAX_EVENT_TYPE: usize = 64;

/// 9999-12-31T23:59:59Z: a later `ts` is a corrupt clock, not a reading.
const MAX_TS: i64 = 253_402_300_799;

/// The one last will the firmware sets (`mqtt_manager.c`:
/// `last_will.msg = "offline"`), byte for byte. Anything else on an `lwt`
/// topic is not the broker speaking for a vanished node.
pub const LWT_PAYLOAD: &[u8] = b"offline";

/// `HISTORY_MAX_FUTURE_SKEW_SEC`'s default: 5 minutes, far more than a synced
/// node clock drifts, far less than a clock that was never set.
pub const DEFAULT_MAX_FUTURE_SKEW_SEC: i64 = 300;

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
            max_future_skew_sec: DEFAULT_MAX_FUTURE_SKEW_SEC,
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
    decode_parsed(Topic::parse(topic), payload, received_at, checks)
}

/// [`decode`] of a topic already parsed (ingest parses each topic once).
pub fn decode_parsed(
    parsed: Result<Topic, TopicError>,
    payload: &[u8],
    received_at: i64,
    checks: Checks,
) -> Result<Uplink, Rejection> {
    let parsed = parsed.map_err(|e| Rejection::new("bad_topic", e.problem))?;
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
    let body = decode_body(node_topic.kind, payload, received_at, checks)?;
    Ok(Uplink {
        topic: node_topic,
        body,
    })
}

/// Decodes a message ingest stored: its kind is the one ingest parsed
/// (the pack's tag), its topic is only split for the uids it names.
pub fn decode_stored(
    kind: TopicKind,
    topic: &str,
    payload: &[u8],
    received_at: i64,
    checks: Checks,
) -> Result<Uplink, Rejection> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (gh, zone, node, channel) = match (levels.as_slice(), kind.has_channel()) {
        (["hydro", gh, zone, node, _], false) => (*gh, *zone, *node, None),
        (["hydro", gh, zone, node, channel, _], true) => (*gh, *zone, *node, Some(*channel)),
        _ => return Err(Rejection::new("bad_topic", "does not fit its stored kind")),
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(refusal(&PayloadError::TooLarge(payload.len()), payload));
    }
    let topic = NodeTopic::new(gh, zone, node, channel, kind);
    let body = if topic.is_temp() {
        Body::Unbound
    } else {
        decode_body(kind, payload, received_at, checks)?
    };
    Ok(Uplink { topic, body })
}

/// The payload of a bound node's message of `kind`, decoded and checked.
fn decode_body(
    kind: TopicKind,
    payload: &[u8],
    received_at: i64,
    checks: Checks,
) -> Result<Body, Rejection> {
    let body = match kind {
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
    Ok(body)
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
mod tests;
