//! Commands to a node and its responses, with the id and name rules.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;

static CMD_ID_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_-]{1,128}$").expect("valid regex"));

/// `…/{channel}/command`: what the backend asks a node to do, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub cmd_id: String,
    pub cmd: String,
    pub params: Map<String, Value>,
    /// Seconds since the epoch when the backend signed it.
    pub ts: i64,
    /// Lowercase hex HMAC-SHA256, see [`crate::signing`].
    pub sig: String,
}

impl Command {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let c: Command = decode(bytes)?;
        validate_cmd_id(&c.cmd_id)?;
        validate_cmd_name(&c.cmd)?;
        if c.sig.len() != 64
            || !c
                .sig
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(PayloadError::field(
                "sig",
                "must be 64 lowercase hex characters",
            ));
        }
        Ok(c)
    }
}

/// Checks a client-chosen or generated command id against the contract.
pub fn validate_cmd_id(cmd_id: &str) -> Result<(), PayloadError> {
    if CMD_ID_RE.is_match(cmd_id) {
        Ok(())
    } else {
        Err(PayloadError::field(
            "cmd_id",
            "must match ^[A-Za-z0-9_-]{1,128}$",
        ))
    }
}

/// Checks a command name: 1 to 64 characters.
pub fn validate_cmd_name(cmd: &str) -> Result<(), PayloadError> {
    let n = cmd.chars().count();
    if (1..=64).contains(&n) {
        Ok(())
    } else {
        Err(PayloadError::field("cmd", "must be 1 to 64 characters"))
    }
}

/// The statuses a node may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseStatus {
    Ack,
    Done,
    Error,
    Invalid,
    Busy,
    NoEffect,
    Timeout,
}

/// `…/{channel}/command_response`: a node's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub cmd_id: String,
    pub status: ResponseStatus,
    /// Milliseconds since the epoch.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CommandResponse {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let r: CommandResponse = decode(bytes)?;
        validate_cmd_id(&r.cmd_id)?;
        Ok(r)
    }
}
