//! The firmware's checks on a command before it runs (node_command_handler.c,
//! MQTT_SPEC §7.3), in its order: `ts` and `sig` present and well formed,
//! the clock synchronised, `ts` within 10 s of it, then the HMAC-SHA256 of
//! the canonical JSON ([`super::canonical`]) keyed with the node secret,
//! compared case-insensitively.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::canonical::signed_bytes;

/// A command's `ts` must be less than this many seconds from the node clock.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 10;

/// Why the firmware answers ERROR before running a command; each carries
/// the `error_code` and `error_message` the firmware sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacRejection {
    /// `ts` or `sig` missing, of the wrong type, or `sig` not 64 characters.
    Format(&'static str),
    /// No time response yet: the node cannot judge `ts`.
    TimeNotSynced,
    /// `ts` is 10 s or more away from the node clock.
    TimestampExpired,
    /// The HMAC does not match.
    InvalidSignature,
}

impl HmacRejection {
    pub fn error_code(self) -> &'static str {
        match self {
            HmacRejection::Format(_) => "invalid_hmac_format",
            HmacRejection::TimeNotSynced => "time_not_synced",
            HmacRejection::TimestampExpired => "timestamp_expired",
            HmacRejection::InvalidSignature => "invalid_signature",
        }
    }

    pub fn error_message(self) -> &'static str {
        match self {
            HmacRejection::Format(m) => m,
            HmacRejection::TimeNotSynced => "Time is not synchronized yet",
            HmacRejection::TimestampExpired => "Command timestamp is outside acceptable range",
            HmacRejection::InvalidSignature => "Command HMAC signature verification failed",
        }
    }
}

/// Checks `command` (the received object) with `secret`, against the node
/// clock `now` (seconds; `None` before the time response).
pub fn check(
    command: &Map<String, Value>,
    secret: &[u8],
    now: Option<i64>,
) -> Result<(), HmacRejection> {
    let (ts, sig) = match (command.get("ts"), command.get("sig")) {
        (Some(ts), Some(sig)) => (ts, sig),
        (None, None) => return Err(HmacRejection::Format("Command must include ts and sig")),
        _ => {
            return Err(HmacRejection::Format(
                "ts and sig must be provided together",
            ));
        }
    };
    let (Some(ts), Some(sig)) = (ts.as_f64(), sig.as_str()) else {
        return Err(HmacRejection::Format("Invalid HMAC fields format"));
    };
    if sig.len() != 64 {
        return Err(HmacRejection::Format("Invalid HMAC signature length"));
    }
    let Some(now) = now else {
        return Err(HmacRejection::TimeNotSynced);
    };
    // The firmware casts the double to int64 (truncation).
    let ts = ts as i64;
    if (now - ts).abs() >= TIMESTAMP_TOLERANCE_SECS {
        return Err(HmacRejection::TimestampExpired);
    }
    let Ok(expected) = hex::decode(sig.to_ascii_lowercase()) else {
        return Err(HmacRejection::InvalidSignature);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&signed_bytes(command));
    mac.verify_slice(&expected)
        .map_err(|_| HmacRejection::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"a-node-secret-of-at-least-32-characters";

    /// Signs the way the backend must: HMAC over the canonical text.
    fn signed(mut v: Value, secret: &[u8]) -> Map<String, Value> {
        let text = super::super::canonical::canonical(&v);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(text.as_bytes());
        v["sig"] = json!(hex::encode(mac.finalize().into_bytes()));
        v.as_object().unwrap().clone()
    }

    fn command(ts: i64) -> Value {
        json!({"cmd_id": "c-1", "cmd": "dose", "params": {"ml": 2.0}, "ts": ts})
    }

    #[test]
    fn a_fresh_well_signed_command_passes() {
        let c = signed(command(1_000), SECRET);
        assert_eq!(check(&c, SECRET, Some(1_005)), Ok(()));
        // Upper-case hex is accepted.
        let mut upper = c.clone();
        upper["sig"] = json!(c["sig"].as_str().unwrap().to_ascii_uppercase());
        assert_eq!(check(&upper, SECRET, Some(1_000)), Ok(()));
    }

    #[test]
    fn a_float_param_is_signed_as_cjson_prints_it() {
        // {"ml":2.0} is signed over `"ml":2`: the same signature as {"ml":2}.
        let text = br#"{"cmd":"dose","cmd_id":"c-1","params":{"ml":2},"ts":1000}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(text);
        let mut c = command(1_000);
        c["sig"] = json!(hex::encode(mac.finalize().into_bytes()));
        assert_eq!(check(c.as_object().unwrap(), SECRET, Some(1_000)), Ok(()));
        // Signed over `2.0` (what a naive serialiser prints), it fails.
        let naive = br#"{"cmd":"dose","cmd_id":"c-1","params":{"ml":2.0},"ts":1000}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(naive);
        c["sig"] = json!(hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            check(c.as_object().unwrap(), SECRET, Some(1_000)),
            Err(HmacRejection::InvalidSignature)
        );
    }

    #[test]
    fn rejections_in_firmware_order() {
        let good = signed(command(1_000), SECRET);
        assert_eq!(
            check(&good, b"another-secret-another-secret-xx", Some(1_000)),
            Err(HmacRejection::InvalidSignature)
        );
        assert_eq!(
            check(&good, SECRET, Some(1_010)),
            Err(HmacRejection::TimestampExpired)
        );
        assert_eq!(
            check(&good, SECRET, Some(990)),
            Err(HmacRejection::TimestampExpired)
        );
        assert_eq!(check(&good, SECRET, Some(1_009)), Ok(()));
        assert_eq!(
            check(&good, SECRET, None),
            Err(HmacRejection::TimeNotSynced)
        );
        // A tampered parameter breaks the signature.
        let mut tampered = good.clone();
        tampered["params"] = json!({"ml": 2.5});
        assert_eq!(
            check(&tampered, SECRET, Some(1_000)),
            Err(HmacRejection::InvalidSignature)
        );

        let format =
            |c: &Map<String, Value>| check(c, SECRET, Some(1_000)).unwrap_err().error_code();
        let mut no_sig = good.clone();
        no_sig.remove("sig");
        assert_eq!(format(&no_sig), "invalid_hmac_format");
        let mut no_ts = good.clone();
        no_ts.remove("ts");
        assert_eq!(format(&no_ts), "invalid_hmac_format");
        let mut neither = no_ts.clone();
        neither.remove("sig");
        assert_eq!(format(&neither), "invalid_hmac_format");
        let mut short = good.clone();
        short["sig"] = json!("abc");
        assert_eq!(format(&short), "invalid_hmac_format");
        let mut text_ts = good.clone();
        text_ts["ts"] = json!("1000");
        assert_eq!(format(&text_ts), "invalid_hmac_format");
        // The format is judged before the clock, as on the firmware.
        assert_eq!(
            check(&short, SECRET, None).unwrap_err().error_code(),
            "invalid_hmac_format"
        );
    }
}
