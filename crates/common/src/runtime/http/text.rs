//! The text check for what goes to PostgreSQL: NUL characters and
//! over-long strings are a 400 naming the field.

use serde_json::Value;

use crate::runtime::api_error::ApiError;

/// Checks a string from a request (path, query or body) before it goes near
/// PostgreSQL: a NUL character (which PostgreSQL refuses in text) or more than
/// `max_chars` characters is a 400 naming `field`. Every service's input
/// validation calls this.
pub fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!("`{field}` contains a NUL character (\\u0000), which cannot be stored"),
        ));
    }
    if value.len() > max_chars && value.chars().count() > max_chars {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!("`{field}` is longer than {max_chars} characters"),
        ));
    }
    Ok(())
}

/// [`check_text`] on every string of a JSON document, keys included, each
/// named by its path from `field` (`channels[0].unit`; `field` empty for a
/// whole body): PostgreSQL refuses a NUL in `jsonb` as in text.
pub fn check_json_text(field: &str, value: &Value, max_chars: usize) -> Result<(), ApiError> {
    let join = |key: &str| {
        if field.is_empty() {
            key.to_owned()
        } else {
            format!("{field}.{key}")
        }
    };
    match value {
        Value::String(s) => check_text(field, s, max_chars),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_text(&format!("{field}[{i}]"), v, max_chars)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let path = join(&k.escape_debug().to_string());
            check_text(&path, k, max_chars)?;
            check_json_text(&path, v, max_chars)
        }),
        _ => Ok(()),
    }
}

/// [`check_text`] for an optional value.
pub fn check_opt_text(field: &str, value: Option<&str>, max_chars: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| check_text(field, v, max_chars))
}
