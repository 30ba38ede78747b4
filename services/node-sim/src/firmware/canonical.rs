//! The bytes the hydro2.0 firmware signs a command over, computed the way
//! its cJSON does, independently of `proto::signing` so that a difference
//! between the backend and the firmware shows up as `invalid_signature`.
//!
//! The firmware takes the received object, deletes `sig`, sorts every
//! object's keys (`strcmp`, recursively; arrays keep their order) and prints
//! it with `cJSON_PrintUnformatted`:
//!
//! - numbers are doubles: NaN and infinities print `null`; a value equal to
//!   its `int` (saturated to `i32`) prints as that integer (`%d`); otherwise
//!   `%1.15g`, or `%1.17g` when the 15-digit text does not read back to the
//!   same double (within `max(|a|,|b|) * DBL_EPSILON`);
//! - strings escape only `"`, `\`, `\b`, `\f`, `\n`, `\r`, `\t` and other
//!   control characters (`\u00xx`); UTF-8 and `/` are written as they are.

use serde_json::{Map, Value};

/// Canonical bytes of `object` without its `sig` field.
pub fn signed_bytes(object: &Map<String, Value>) -> Vec<u8> {
    let mut out = String::new();
    write_object(&mut out, object, Some("sig"));
    out.into_bytes()
}

/// Canonical text of any JSON value (keys sorted, compact, cJSON numbers).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // cJSON keeps every number as a double.
        Value::Number(n) => out.push_str(&number(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, None),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>, skip: Option<&str>) {
    // Byte order, as strcmp sorts; serde_json's Map is already a BTreeMap
    // but the order is made explicit here rather than borrowed from a feature flag.
    let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, &map[key]);
    }
    out.push('}');
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What cJSON's `print_number` writes for `d`.
pub fn number(d: f64) -> String {
    if !d.is_finite() {
        return "null".into();
    }
    // cJSON's valueint: the double saturated to i32, else truncated.
    let valueint = if d >= f64::from(i32::MAX) {
        i32::MAX
    } else if d <= f64::from(i32::MIN) {
        i32::MIN
    } else {
        d as i32
    };
    if d == f64::from(valueint) {
        return valueint.to_string();
    }
    let short = format_g(d, 15);
    match short.parse::<f64>() {
        Ok(back) if close(back, d) => short,
        _ => format_g(d, 17),
    }
}

/// cJSON's `compare_double`.
fn close(a: f64, b: f64) -> bool {
    let max = a.abs().max(b.abs());
    (a - b).abs() <= max * f64::EPSILON
}

/// C's `%1.{precision}g` for a finite, non-zero double.
fn format_g(d: f64, precision: usize) -> String {
    // The exponent after rounding to `precision` significant digits decides
    // between fixed and scientific notation, as C specifies.
    let sci = format!("{:.*e}", precision - 1, d);
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let p = i32::try_from(precision).expect("small precision");
    if exp < -4 || exp >= p {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(p - 1 - exp).expect("non-negative by the branch");
        strip_zeros(&format!("{d:.decimals$}")).to_owned()
    }
}

/// `%g` drops trailing zeros of the fraction, and the point if nothing is left.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_cjson_does() {
        // Expected texts computed with python3's C formatting ('%1.15g' % x,
        // '%1.17g' % x) and cJSON's rules around them.
        let cases: &[(f64, &str)] = &[
            (2.0, "2"),
            (0.5, "0.5"),
            (1e21, "1e+21"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.33333333333333331"),
            (3_000_000_000.0, "3000000000"),
            (2_147_483_647.0, "2147483647"),
            (2_147_483_648.0, "2147483648"),
            (-2_147_483_648.0, "-2147483648"),
            (-2_147_483_649.0, "-2147483649"),
            (-1.5, "-1.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
            (1e15, "1e+15"),
            (2.5e-3, "0.0025"),
            (6.02e23, "6.02e+23"),
            (1e300, "1e+300"),
            (5e-324, "4.94065645841247e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (9_007_199_254_740_992.0, "9.00719925474099e+15"),
            (100.25, "100.25"),
            // Within one DBL_EPSILON of the 15-digit text: cJSON keeps the
            // short form where an exact round trip would need 17 digits.
            (0.1 + 0.2, "0.3"),
            (0.1 + 0.7, "0.8"),
            (1.000_000_000_000_000_2, "1"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for (x, expected) in cases {
            assert_eq!(number(*x), *expected, "{x:e}");
        }
    }

    #[test]
    fn objects_are_sorted_compact_and_unescaped() {
        let v = json!({
            "ts": 1737979200,
            "params": {"ml": 2.0, "b": [3, {"z": 1, "a": 0.5}], "note": "pH ↑ /ok \"q\" \\ \n\u{1}"},
            "cmd_id": "c-1",
            "cmd": "dose",
            "sig": "ab"
        });
        let bytes = signed_bytes(v.as_object().unwrap());
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"cmd":"dose","cmd_id":"c-1","params":{"b":[3,{"a":0.5,"z":1}],"ml":2,"note":"pH ↑ /ok \"q\" \\ \n\u0001"},"ts":1737979200}"#
        );
        assert_eq!(
            canonical(&json!({"e": {}, "a": [], "n": null, "t": true})),
            r#"{"a":[],"e":{},"n":null,"t":true}"#
        );
    }

    #[test]
    fn keys_sort_by_bytes() {
        // Upper case before lower case, a prefix first, UTF-8 after ASCII.
        let v = json!({"b": 1, "B": 2, "ab": 3, "a": 4, "é": 5});
        assert_eq!(canonical(&v), r#"{"B":2,"a":4,"ab":3,"b":1,"é":5}"#);
    }
}
