//! The bind request body, checked field by field so that a 422 names the
//! field to fix. Pure: unit-tested here.

use proto::payloads::NodeConfigChannel;
use serde_json::{Map, Value};

use crate::channels;
use crate::error::ApiError;
use crate::lifecycle::valid_uid;
use crate::pushes::BindRequest;

/// The longest string any body field takes (`name` takes 128).
const MAX_FIELD_CHARS: usize = 256;

/// A JSON object, or a 400 (naming the field when a string could not be
/// stored: a NUL, or longer than [`MAX_FIELD_CHARS`]).
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    common::runtime::http::check_json_text("", &value, MAX_FIELD_CHARS)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        )),
    }
}

fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::unprocessable("invalid_field", format!("`{field}` {problem}"))
}

fn uid_field(
    body: &Map<String, Value>,
    field: &str,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(invalid(field, "is required")),
        Some(Value::String(s)) if valid_uid(s) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            field,
            "must be a string matching ^[A-Za-z0-9_.-]{1,64}$",
        )),
    }
}

/// `{"greenhouse_uid","zone_uid","node_uid"?,"name"?,"channels"?}`.
pub fn bind_request(bytes: &[u8]) -> Result<BindRequest, ApiError> {
    let body = object(bytes)?;
    const KNOWN: &[&str] = &["greenhouse_uid", "zone_uid", "node_uid", "name", "channels"];
    if let Some(unknown) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(invalid(
            unknown,
            "is not a field of a bind; use greenhouse_uid, zone_uid, node_uid, name, channels",
        ));
    }
    let greenhouse_uid = uid_field(&body, "greenhouse_uid", true)?.expect("required");
    let zone_uid = uid_field(&body, "zone_uid", true)?.expect("required");
    let node_uid = uid_field(&body, "node_uid", false)?;
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => {
            Some(s.trim().to_owned())
        }
        Some(_) => return Err(invalid("name", "must be a string of 1 to 128 characters")),
    };
    let channels = match body.get("channels") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let list: Vec<NodeConfigChannel> = serde_json::from_value(v.clone()).map_err(|e| {
                invalid("channels", &format!("must be a list of {{\"name\",\"type\",\"metric\"?,\"actuator_type\"?}}: {e}"))
            })?;
            channels::validate(&list).map_err(|e| invalid("channels", &e))?;
            Some(list)
        }
    };
    Ok(BindRequest {
        greenhouse_uid,
        zone_uid,
        node_uid,
        name,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: &[u8]) -> (String, String) {
        match bind_request(bytes).unwrap_err() {
            ApiError::Unprocessable { code, message } | ApiError::BadRequest { code, message } => {
                (code.to_owned(), message)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_body() {
        let r = bind_request(
            br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","node_uid":"nd-ph-1","name":" Tank A ",
                 "channels":[{"name":"ph_sensor","type":"SENSOR","metric":"PH"}]}"#,
        )
        .unwrap();
        assert_eq!(r.zone_uid, "zn-1");
        assert_eq!(r.node_uid.as_deref(), Some("nd-ph-1"));
        assert_eq!(r.name.as_deref(), Some("Tank A"));
        assert_eq!(r.channels.unwrap().len(), 1);
        let r = bind_request(br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1"}"#).unwrap();
        assert!(r.node_uid.is_none() && r.channels.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        for (body, field) in [
            (&br#"{"greenhouse_uid":"gh-1"}"#[..], "zone_uid"),
            (br#"{"zone_uid":"zn-1"}"#, "greenhouse_uid"),
            (br#"{"greenhouse_uid":"gh-1","zone_uid":5}"#, "zone_uid"),
            (
                br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","node_uid":"a b"}"#,
                "node_uid",
            ),
            (
                br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","name":""}"#,
                "name",
            ),
            (
                br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","channels":[{"name":"x"}]}"#,
                "channels",
            ),
            (
                br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","zone":"x"}"#,
                "zone",
            ),
        ] {
            let (code, message) = message(body);
            assert_eq!(code, "invalid_field");
            assert!(message.contains(&format!("`{field}`")), "{message}");
        }
        assert_eq!(message(b"[1]").0, "invalid_body");
        assert_eq!(message(b"{").0, "invalid_json");
        for (body, field) in [
            (
                &br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","name":"a\u0000b"}"#[..],
                "`name`",
            ),
            (
                br#"{"greenhouse_uid":"gh-1","zone_uid":"zn-1","channels":[{"name":"ph","type":"SENSOR","metric":"PH","unit":"\u0000"}]}"#,
                "`channels[0].unit`",
            ),
        ] {
            let (code, message) = message(body);
            assert_eq!(code, "invalid_text");
            assert!(message.contains(field), "{message}");
        }
    }
}
