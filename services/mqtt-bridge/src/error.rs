//! The API's errors. Every variant documents its HTTP status; each answers
//! `{"status":"error","code":"<snake_case>","message":"<what to fix>"}`.
//! Database errors are logged and shown as an opaque 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not the JSON object the endpoint takes.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 422: well-formed, but a value is not acceptable.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 404: zone, node, channel, command or route unknown.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the `cmd_id` was used before for another request.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 503: no broker accepted the command (its row is SEND_FAILED).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500: something failed on our side; details only in the log.
    #[error("internal error")]
    Internal(#[from] sqlx::Error),
    /// 500: a group-committed write failed; details only in the log.
    #[error("internal error")]
    Store(common::batcher::BatchError),
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

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, code, message.clone())
            }
            ApiError::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message.clone())
            }
            ApiError::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message.clone()),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message.clone()),
            ApiError::Unavailable { code, message } => {
                (StatusCode::SERVICE_UNAVAILABLE, code, message.clone())
            }
            ApiError::Internal(e) => internal(e),
            ApiError::Store(e) => internal(e),
        }
    }
}

fn internal(e: &dyn std::fmt::Display) -> (StatusCode, &'static str, String) {
    error!(error = %e, "Database error while answering a request.");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error; see the service log".into(),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        (
            status,
            Json(json!({ "status": "error", "code": code, "message": message })),
        )
            .into_response()
    }
}
