//! The JSON payloads of the contract (section 3), each with its validation.
//!
//! Decoding is strict where the contract is strict (telemetry rejects unknown
//! fields) and lenient where old firmware may add fields (responses, hello).
//! Every decoder returns a [`PayloadError`] whose `reason()` is a bounded
//! label for the `…_dropped_total{reason}` counters.

mod commands;
mod config;
#[cfg(test)]
mod tests;
mod uplink;

pub use commands::*;
pub use config::*;
pub use uplink::*;

use serde::Deserialize;

/// Largest uplink payload accepted, in bytes. An ESP32 node never sends more
/// than a few hundred bytes; anything bigger is a bug or an attack.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Telemetry `ts` below this (seconds) is a node without a synced clock: the
/// receive time replaces it.
pub const MIN_VALID_TS: i64 = 1_000_000_000;

/// Why a payload was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit")]
    TooLarge(usize),
    #[error("payload is not valid JSON for this message: {0}")]
    Json(String),
    #[error("invalid field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl PayloadError {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::TooLarge(_) => "oversized",
            PayloadError::Json(_) => "invalid_json",
            PayloadError::Field { .. } => "invalid_field",
        }
    }

    fn field(field: &'static str, problem: impl Into<String>) -> Self {
        PayloadError::Field {
            field,
            problem: problem.into(),
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, PayloadError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| PayloadError::Json(e.to_string()))
}
