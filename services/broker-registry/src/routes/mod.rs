//! The registry's HTTP routes: the JSON API under `/api` and the dashboard at `/`.

pub mod actions;
pub mod advisor;
pub mod assignments;
pub mod brokers;
pub mod dashboard;
pub mod history;
pub mod live;

use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
pub use crate::state::ApiState;

pub fn router(state: ApiState) -> Router {
    brokers::router()
        .merge(assignments::router())
        .merge(history::router())
        .merge(advisor::router())
        .merge(actions::router())
        .merge(live::router())
        .merge(dashboard::router())
        .with_state(state)
}

/// The longest string any body field takes; fields with a shorter column
/// are checked on their own.
pub const MAX_FIELD_CHARS: usize = 1024;

/// The longest broker id (the `brokers.id` CHECK).
pub const MAX_ID_CHARS: usize = 64;

/// A JSON body, or a 400 that says what is wrong with it (naming the field
/// when a string could not be stored: NUL, or longer than [`MAX_FIELD_CHARS`]).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    common::runtime::http::check_json_text("", &value, MAX_FIELD_CHARS)?;
    serde_json::from_value(value).map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))
}
