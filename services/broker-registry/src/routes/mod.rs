//! The registry's HTTP routes: the JSON API under `/api` and the dashboard at `/`.

pub mod actions;
pub mod advisor;
pub mod assignments;
pub mod brokers;
pub mod dashboard;
pub mod history;
pub mod live;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use common::mqtt::pool::BrokerPool;
use common::placement::balance::RebalanceLimits;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use crate::advisor::run::Advisor;
use crate::error::ApiError;
use crate::strategy::SharedStrategy;

/// What the routes need.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    /// The strategy in force (changed at run time through the API).
    pub strategy: SharedStrategy,
    pub limits: RebalanceLimits,
    pub cooldown: Duration,
    /// `NODE_DEFAULT_SECRET`, for NodeConfig moves of nodes without a secret.
    pub default_secret: secrecy::SecretString,
    pub advisor: Arc<Advisor>,
    /// The service's stop: long-lived responses (the event stream) end on it.
    pub stop: tokio_util::sync::CancellationToken,
}

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
