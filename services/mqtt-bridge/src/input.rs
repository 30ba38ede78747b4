//! The strings a request brings — path segments, body fields, every string
//! and key inside `params` — checked before anything reaches PostgreSQL,
//! which refuses a NUL character in `text` and `\u0000` in `jsonb`, and
//! whose columns bound their lengths. A bad one is a 400 naming the field,
//! never a 500, and never reaches the group-committed INSERT it would fail
//! for everyone else in it (see `common::commands`).

use proto::payloads::MAX_PAYLOAD_BYTES;
use serde_json::Value;

use crate::error::ApiError;

/// Zone, node and channel uids: `^[A-Za-z0-9_.-]{1,64}$` in the schema.
pub const MAX_UID_CHARS: usize = 64;
/// `commands.cmd_id`.
pub const MAX_CMD_ID_CHARS: usize = 128;
/// `commands.cmd`.
pub const MAX_CMD_CHARS: usize = 64;
/// `params` as JSON at most: the signed command around it (ids, `ts`, a
/// 64-character `sig`) must still fit the brokers' message size limit.
pub const MAX_PARAMS_BYTES: usize = MAX_PAYLOAD_BYTES - 1024;

/// The code of every refusal of this module.
const CODE: &str = "invalid_field";

/// A string field: no NUL, at most `max_chars` characters.
pub fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(nul(field));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ApiError::bad_request(
            CODE,
            format!("`{field}` is {chars} characters long; at most {max_chars} are accepted"),
        ));
    }
    Ok(())
}

/// A JSON value (`params`): no NUL in any string or key at any depth, and
/// at most [`MAX_PARAMS_BYTES`] as JSON.
pub fn check_json(field: &str, value: &Value) -> Result<(), ApiError> {
    check_nested(field, value)?;
    let bytes = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if bytes > MAX_PARAMS_BYTES {
        return Err(ApiError::bad_request(
            CODE,
            format!(
                "`{field}` is {bytes} bytes as JSON; at most {MAX_PARAMS_BYTES} fit in a command"
            ),
        ));
    }
    Ok(())
}

fn check_nested(path: &str, value: &Value) -> Result<(), ApiError> {
    match value {
        Value::String(s) if s.contains('\0') => Err(nul(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_nested(&format!("{path}[{i}]"), item)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let inner = format!("{path}.{}", key.escape_debug());
            if key.contains('\0') {
                return Err(ApiError::bad_request(
                    CODE,
                    format!("a key of `{path}` (`{inner}`) contains a NUL character (\\u0000), which cannot be stored"),
                ));
            }
            check_nested(&inner, item)
        }),
        _ => Ok(()),
    }
}

fn nul(field: &str) -> ApiError {
    ApiError::bad_request(
        CODE,
        format!("`{field}` contains a NUL character (\\u0000), which cannot be stored"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(r: Result<(), ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { code, message }) => {
                assert_eq!(code, CODE);
                message
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn text_fields_are_checked_for_nul_and_length() {
        assert!(check_text("channel", "pump_acid", 64).is_ok());
        assert!(check_text("channel", &"é".repeat(64), 64).is_ok());
        assert!(message(check_text("channel", "pump\0", 64)).contains("`channel`"));
        assert!(message(check_text("cmd", &"x".repeat(65), 64)).contains("`cmd` is 65"));
    }

    #[test]
    fn params_are_checked_at_every_depth_and_name_the_place() {
        assert!(check_json("params", &json!({"a": [1, "x", {"b": null}]})).is_ok());
        assert!(message(check_json("params", &json!({"a": "x\u{0}"}))).contains("`params.a`"));
        assert!(
            message(check_json("params", &json!({"a": [1, {"b": ["\u{0}"]}]})))
                .contains("`params.a[1].b[0]`")
        );
        assert!(
            message(check_json("params", &json!({"a": {"k\u{0}": 1}})))
                .contains("a key of `params.a`")
        );
        let big = json!({"blob": "x".repeat(MAX_PARAMS_BYTES)});
        assert!(message(check_json("params", &big)).contains("bytes as JSON"));
    }
}
