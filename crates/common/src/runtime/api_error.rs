//! The one error type of every HTTP API: each variant documents its status,
//! each answers `{"status":"error","code":"<snake_case>","message":"<what to
//! fix>"}`. Database and other internal errors are logged and shown as an
//! opaque 500. A service maps its own domain errors into it with `From`.
//! A success answers in the same envelope: [`ok`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::error;

/// What an API handler answers: a success ([`ok`]) or an [`ApiError`].
pub type ApiResult = Result<Json<Value>, ApiError>;

/// A success: `{"status":"ok","data":<data>}`.
pub fn ok(data: impl Serialize) -> Json<Value> {
    Json(json!({ "status": "ok", "data": data }))
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not the JSON the endpoint takes.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 422: well-formed, but a field is missing or its value not acceptable.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 404: the thing named (zone, node, broker, command, route) is unknown.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the request conflicts with what exists (an id used before, a
    /// node in the wrong state).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 503: no broker took the message (what that leaves is said in `message`).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500: something failed on our side; details only in the log.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// A 500 whose cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::commands::CommandError> for ApiError {
    fn from(e: crate::commands::CommandError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            ApiError::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ApiError::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            ApiError::Unavailable { code, message } => {
                (StatusCode::SERVICE_UNAVAILABLE, code, message)
            }
            ApiError::Internal(cause) => {
                error!(error = %cause, "Internal error while answering a request.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error; see the service log".to_owned(),
                )
            }
        };
        (
            status,
            Json(json!({ "status": "error", "code": code, "message": message })),
        )
            .into_response()
    }
}
