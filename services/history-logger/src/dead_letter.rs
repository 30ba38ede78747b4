//! The dead-letter record: what an operator needs to see why a message was
//! refused. Kept as JSON in a bounded Redis list (newest first), e.g.
//! `LRANGE history-logger:dead-letter 0 9`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

/// Payload bytes kept per record; a longer payload is cut (its full size is
/// recorded) so one oversized message cannot bloat Redis.
pub const PAYLOAD_KEPT_BYTES: usize = 4096;

/// One refused message.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub broker: &'a str,
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// The bounded label also used in `telemetry_dropped_total{reason}`.
    pub reason: &'static str,
    /// The detail for a human: which field, what was wrong.
    pub detail: &'a str,
    pub at: DateTime<Utc>,
}

impl DeadLetter<'_> {
    /// The JSON record: `topic`, `payload` (lossy UTF-8, cut at
    /// [`PAYLOAD_KEPT_BYTES`]), `payload_bytes`, `truncated`, `reason`,
    /// `detail`, `broker`, `at` (RFC 3339).
    pub fn record(&self) -> String {
        let kept = &self.payload[..self.payload.len().min(PAYLOAD_KEPT_BYTES)];
        json!({
            "topic": self.topic,
            "payload": String::from_utf8_lossy(kept),
            "payload_bytes": self.payload.len(),
            "truncated": kept.len() < self.payload.len(),
            "reason": self.reason,
            "detail": self.detail,
            "broker": self.broker,
            "at": self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn letter(payload: &[u8]) -> Value {
        let d = DeadLetter {
            broker: "mqtt1",
            topic: "hydro/gh/zn/nd/ph/telemetry",
            payload,
            reason: "invalid_json",
            detail: "expected value",
            at: DateTime::from_timestamp(1_737_979_200, 0).unwrap(),
        };
        serde_json::from_str(&d.record()).unwrap()
    }

    #[test]
    fn record_format() {
        let v = letter(b"not json");
        assert_eq!(v["topic"], "hydro/gh/zn/nd/ph/telemetry");
        assert_eq!(v["payload"], "not json");
        assert_eq!(v["payload_bytes"], 8);
        assert_eq!(v["truncated"], false);
        assert_eq!(v["reason"], "invalid_json");
        assert_eq!(v["detail"], "expected value");
        assert_eq!(v["broker"], "mqtt1");
        assert_eq!(v["at"], "2025-01-27T12:00:00.000Z");
    }

    #[test]
    fn binary_and_oversized_payloads() {
        let v = letter(&[0xff, b'a']);
        assert_eq!(v["payload"], "\u{fffd}a");
        let big = vec![b'x'; PAYLOAD_KEPT_BYTES + 10];
        let v = letter(&big);
        assert_eq!(v["payload"].as_str().unwrap().len(), PAYLOAD_KEPT_BYTES);
        assert_eq!(v["payload_bytes"], PAYLOAD_KEPT_BYTES + 10);
        assert_eq!(v["truncated"], true);
    }
}
