//! HMAC-SHA256 command signing, exactly as the hydro2.0 firmware checks it
//! (contract section 3, `command`; docs/protocol.md, "Signing").
//!
//! The signature covers the canonical JSON of the command without `sig`.
//! The firmware builds it with cJSON: it parses the command, sorts every
//! object's keys (byte order), and prints it unformatted. So the canonical
//! form is what cJSON prints, not what a JSON library of ours would:
//! - keys sorted, no spaces, array order kept;
//! - strings escaped as cJSON does (`"`, `\`, `\b \f \n \r \t`, other
//!   control characters as `\u00xx`; UTF-8 and `/` as they are), which is
//!   also what serde_json prints for a string;
//! - every number is a C `double`: NaN and ±Infinity print `null`; a value
//!   equal to its `int` (cJSON saturates to ±2³¹) prints as that integer
//!   (`2.0` → `2`, `-0.0` → `0`); anything else prints `%1.15g`, or `%1.17g`
//!   when 15 digits do not give the same double back (`1e21` → `1e+21`).
//!
//! A move (`nodes/{node}/config/update`) is signed the same way: the
//! canonical form of its object without `sig` (`broker_id`, `fallback`,
//! `mqtt_broker`, `ts`), keyed with the same secret as the node's commands.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::payloads::{Command, ConfigUpdate};

type HmacSha256 = Hmac<Sha256>;

/// Appends the canonical (cJSON) form of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n.as_f64().unwrap_or(f64::NAN), out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's Map is a BTreeMap here (no `preserve_order`): its
            // keys iterate in byte order, as the firmware's strcmp sorts them.
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("a string always serialises"));
}

/// cJSON's `print_number` for a double.
fn write_number(d: f64, out: &mut String) {
    if !d.is_finite() {
        out.push_str("null");
        return;
    }
    // cJSON keeps `valueint` as the double cast to int, saturated at the
    // int range; a double equal to it prints as that integer.
    let valueint = d as i32;
    if d == f64::from(valueint) {
        out.push_str(&valueint.to_string());
        return;
    }
    let short = format_g(d, 15);
    let back: f64 = short.parse().unwrap_or(f64::NAN);
    if (back - d).abs() <= back.abs().max(d.abs()) * f64::EPSILON {
        out.push_str(&short);
    } else {
        out.push_str(&format_g(d, 17));
    }
}

/// C's `%1.{precision}g` for a finite, non-zero double.
fn format_g(d: f64, precision: usize) -> String {
    // The exponent %g decides by is the one of %e at the same precision.
    let scientific = format!("{:.*e}", precision - 1, d);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("{:e} always has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exponent.unsigned_abs()
        )
    } else {
        let decimals = (precision as i32 - 1 - exponent) as usize;
        trim_fraction(&format!("{d:.decimals$}")).to_owned()
    }
}

/// Drops trailing zeros of a fraction, and the point if nothing is left.
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// The canonical bytes that are signed: the command without `sig`.
pub fn canonical_bytes(cmd_id: &str, cmd: &str, params: &Map<String, Value>, ts: i64) -> Vec<u8> {
    let mut object = Map::new();
    object.insert("cmd".into(), Value::String(cmd.into()));
    object.insert("cmd_id".into(), Value::String(cmd_id.into()));
    object.insert("params".into(), Value::Object(params.clone()));
    object.insert("ts".into(), Value::from(ts));
    let mut out = String::new();
    write_canonical(&Value::Object(object), &mut out);
    out.into_bytes()
}

fn mac(secret: &[u8], bytes: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(bytes);
    mac
}

/// Builds a signed command ready to publish.
pub fn sign(
    secret: &[u8],
    cmd_id: &str,
    cmd: &str,
    params: Map<String, Value>,
    ts: i64,
) -> Command {
    let sig = hex::encode(
        mac(secret, &canonical_bytes(cmd_id, cmd, &params, ts))
            .finalize()
            .into_bytes(),
    );
    Command {
        cmd_id: cmd_id.into(),
        cmd: cmd.into(),
        params,
        ts,
        sig,
    }
}

/// Checks a command's signature in constant time.
pub fn verify(secret: &[u8], command: &Command) -> bool {
    let Ok(expected) = hex::decode(&command.sig) else {
        return false;
    };
    mac(
        secret,
        &canonical_bytes(&command.cmd_id, &command.cmd, &command.params, command.ts),
    )
    .verify_slice(&expected)
    .is_ok()
}

/// The canonical bytes of a move: its object without `sig`.
pub fn config_update_bytes(config: &ConfigUpdate) -> Vec<u8> {
    let mut value = serde_json::to_value(config).expect("a config update always serialises");
    if let Value::Object(map) = &mut value {
        map.remove("sig");
    }
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out.into_bytes()
}

/// Signs a move with the node's secret (replacing any `sig` it had).
pub fn sign_config_update(secret: &[u8], mut config: ConfigUpdate) -> ConfigUpdate {
    config.sig = hex::encode(
        mac(secret, &config_update_bytes(&config))
            .finalize()
            .into_bytes(),
    );
    config
}

/// Checks a move's signature in constant time; an unsigned one fails.
pub fn verify_config_update(secret: &[u8], config: &ConfigUpdate) -> bool {
    let Ok(expected) = hex::decode(&config.sig) else {
        return false;
    };
    !expected.is_empty()
        && mac(secret, &config_update_bytes(config))
            .verify_slice(&expected)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(v: &Value) -> String {
        let mut out = String::new();
        write_canonical(v, &mut out);
        out
    }

    fn number(text: &str) -> String {
        canonical(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn numbers_print_as_cjson() {
        for (input, printed) in [
            ("2.0", "2"),
            ("2", "2"),
            ("-0.0", "0"),
            ("0.5", "0.5"),
            ("0.1", "0.1"),
            ("1e21", "1e+21"),
            ("-1e21", "-1e+21"),
            ("1.5e300", "1.5e+300"),
            ("1e-7", "1e-07"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("2147483647", "2147483647"),
            ("2147483648", "2147483648"),
            ("-2147483648", "-2147483648"),
            ("3000000000", "3000000000"),
            ("123456789012345", "123456789012345"),
            ("1234567890123456", "1234567890123456"),
            ("12345678901234567890", "1.2345678901234567e+19"),
            ("0.3333333333333333", "0.33333333333333331"),
            ("6.02214076e23", "6.02214076e+23"),
            // 15 digits read back as infinity, which cJSON's relative
            // comparison (inf <= inf·ε) takes as equal: it keeps them.
            ("1.7976931348623157e308", "1.79769313486232e+308"),
        ] {
            assert_eq!(number(input), printed, "{input}");
        }
        let mut out = String::new();
        write_number(f64::NAN, &mut out);
        write_number(f64::INFINITY, &mut out);
        assert_eq!(out, "nullnull");
    }

    #[test]
    fn canonical_form_is_sorted_compact_and_unescaped() {
        let p = json!({"duration_ms": 30000, "b": {"z": 1, "a": [1, 2.5, "é/ü"]}, "ml": 2.0});
        let bytes = canonical_bytes("c1", "run_pump", p.as_object().unwrap(), 1_737_979_200);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"cmd":"run_pump","cmd_id":"c1","params":{"b":{"a":[1,2.5,"é/ü"],"z":1},"duration_ms":30000,"ml":2},"ts":1737979200}"#
        );
        assert_eq!(canonical(&json!("a\"b\\c\n\u{1}")), r#""a\"b\\c\n\u0001""#);
    }

    #[test]
    fn known_vector() {
        // Computed independently with Python (scripts/signing_vectors.py).
        let p = json!({"duration_ms": 30000}).as_object().unwrap().clone();
        let c = sign(b"secret", "c1", "run_pump", p, 1_737_979_200);
        assert_eq!(c.sig, KNOWN_SIG);
    }

    const KNOWN_SIG: &str = include_str!("../tests/golden/known_sig.txt");

    #[test]
    fn verify_accepts_own_and_rejects_tampering() {
        let p = json!({"duration_ms": 30000, "b": {"z": 1}});
        let c = sign(b"k", "c1", "run_pump", p.as_object().unwrap().clone(), 100);
        assert!(verify(b"k", &c));
        assert!(!verify(b"other", &c));
        let mut t = c.clone();
        t.ts += 1;
        assert!(!verify(b"k", &t));
        let mut t = c.clone();
        t.params.insert("duration_ms".into(), json!(1));
        assert!(!verify(b"k", &t));
        let mut t = c;
        t.sig = "zz".into();
        assert!(!verify(b"k", &t));
    }

    #[test]
    fn config_updates_are_signed_over_their_canonical_form() {
        let config = ConfigUpdate {
            mqtt_broker: "mqtt://127.0.0.1:1884".into(),
            broker_id: "mqtt2".into(),
            fallback: vec!["mqtt://127.0.0.1:1885".into()],
            ts: 1_737_979_200,
            sig: String::new(),
        };
        assert_eq!(
            String::from_utf8(config_update_bytes(&config)).unwrap(),
            r#"{"broker_id":"mqtt2","fallback":["mqtt://127.0.0.1:1885"],"mqtt_broker":"mqtt://127.0.0.1:1884","ts":1737979200}"#
        );
        assert!(!verify_config_update(b"k", &config), "unsigned");
        let signed = sign_config_update(b"k", config);
        assert_eq!(signed.sig.len(), 64);
        assert!(verify_config_update(b"k", &signed));
        assert!(!verify_config_update(b"other", &signed));
        let mut t = signed.clone();
        t.mqtt_broker = "mqtt://127.0.0.1:1".into();
        assert!(!verify_config_update(b"k", &t));
        let mut t = signed.clone();
        t.ts += 1;
        assert!(!verify_config_update(b"k", &t));
        let mut t = signed.clone();
        t.fallback.push("mqtt://evil:1883".into());
        assert!(!verify_config_update(b"k", &t));
        // Re-signing replaces the old signature rather than covering it.
        assert_eq!(sign_config_update(b"k", signed.clone()), signed);
        // Computed independently with Python's hmac over json.dumps(sort_keys).
        let known = sign_config_update(
            b"0123456789abcdef0123456789abcdef-node-secret",
            ConfigUpdate {
                sig: String::new(),
                ..signed
            },
        );
        assert_eq!(
            known.sig,
            "834a98dfe9636c34d41da89568cd2ce2a19596f1ebf6bc4ede2f3b9286e042e1"
        );
    }
}
