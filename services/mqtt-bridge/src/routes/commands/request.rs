//! The request body: parsed and checked field by field, each problem named;
//! and the hash a repeated `cmd_id` is compared by.

use common::commands::Target;
use proto::payloads::{validate_cmd_id, validate_cmd_name};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::input::{MAX_CMD_CHARS, MAX_CMD_ID_CHARS, MAX_UID_CHARS, check_json, check_text};

/// The request body. Unknown fields are refused so a typo is not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    cmd: String,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    node_uid: Option<String>,
    channel: String,
    #[serde(default)]
    cmd_id: Option<String>,
}

/// A checked request.
pub(super) struct CommandRequest {
    pub(super) cmd: String,
    pub(super) params: Map<String, Value>,
    pub(super) node_uid: Option<String>,
    pub(super) channel: String,
    pub(super) cmd_id: Option<String>,
}

pub(super) fn parse_body(bytes: &[u8]) -> Result<CommandRequest, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    let Value::Object(object) = &value else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    if object.contains_key("type") {
        return Err(ApiError::bad_request(
            "legacy_field_type",
            "the field `type` is no longer accepted: name the command in `cmd` instead",
        ));
    }
    let body: CommandBody = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    // What PostgreSQL could not store is a 400 naming the field, first.
    check_text("cmd", &body.cmd, MAX_CMD_CHARS)?;
    check_text("channel", &body.channel, MAX_UID_CHARS)?;
    if let Some(node_uid) = &body.node_uid {
        check_text("node_uid", node_uid, MAX_UID_CHARS)?;
    }
    if let Some(cmd_id) = &body.cmd_id {
        check_text("cmd_id", cmd_id, MAX_CMD_ID_CHARS)?;
    }
    if let Some(params) = &body.params {
        check_json("params", params)?;
    }
    validate_cmd_name(&body.cmd)
        .map_err(|e| ApiError::unprocessable("invalid_cmd", e.to_string()))?;
    if let Some(id) = &body.cmd_id {
        validate_cmd_id(id)
            .map_err(|e| ApiError::unprocessable("invalid_cmd_id", e.to_string()))?;
    }
    if body.channel.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_channel",
            "`channel` must not be empty",
        ));
    }
    let params = match body.params {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_params",
                "`params` must be a JSON object",
            ));
        }
    };
    Ok(CommandRequest {
        cmd: body.cmd,
        params,
        node_uid: body.node_uid,
        channel: body.channel,
        cmd_id: body.cmd_id,
    })
}

/// Fingerprint of what a request asks for, to recognise a retry.
pub(super) fn request_hash(request: &CommandRequest, target: &Target) -> String {
    let canonical = json!({
        "cmd": request.cmd,
        "params": request.params,
        "node_id": target.node_id,
        "channel": target.channel,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_code(bytes: &[u8]) -> (&'static str, String) {
        match parse_body(bytes) {
            Err(ApiError::BadRequest { code, message })
            | Err(ApiError::Unprocessable { code, message }) => (code, message),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("accepted {}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn body_checks_name_the_problem() {
        assert_eq!(err_code(b"{").0, "invalid_json");
        assert_eq!(err_code(b"[1]").0, "invalid_body");
        let (code, message) = err_code(br#"{"type":"run_pump","channel":"c"}"#);
        assert_eq!(code, "legacy_field_type");
        assert!(message.contains("`type`"));
        let (code, message) = err_code(br#"{"channel":"c"}"#);
        assert_eq!(code, "invalid_body");
        assert!(message.contains("cmd"), "{message}");
        assert!(
            err_code(br#"{"cmd":"x","channel":"c","colour":1}"#)
                .1
                .contains("colour")
        );
        assert_eq!(err_code(br#"{"cmd":"","channel":"c"}"#).0, "invalid_cmd");
        assert_eq!(
            err_code(br#"{"cmd":"x","channel":"c","cmd_id":"a b"}"#).0,
            "invalid_cmd_id"
        );
        assert_eq!(
            err_code(br#"{"cmd":"x","channel":"c","params":[1]}"#).0,
            "invalid_params"
        );
        assert_eq!(
            err_code(br#"{"cmd":"x","channel":" "}"#).0,
            "invalid_channel"
        );
    }

    #[test]
    fn minimal_body_is_accepted() {
        let r = parse_body(br#"{"cmd":"run_pump","channel":"pump_acid"}"#).unwrap();
        assert!(r.params.is_empty());
        assert!(r.node_uid.is_none() && r.cmd_id.is_none());
    }
}
