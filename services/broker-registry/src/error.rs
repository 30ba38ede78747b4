//! The API's errors. Every variant documents its HTTP status; each answers
//! `{"status":"error","code":"<snake_case>","message":"<what to fix>"}`.
//! Database errors are logged and shown as an opaque 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::registry::ChangeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not the JSON the endpoint takes, or a value is wrong.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 404: no such broker or route.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the broker exists already.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 500: details only in the log.
    #[error("internal error")]
    Internal(#[from] sqlx::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
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
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Conflict(message) => ApiError::Conflict {
                code: "broker_exists",
                message,
            },
            e @ ChangeError::NotFound(_) => ApiError::not_found("broker_not_found", e.to_string()),
            ChangeError::Db(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            ApiError::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            ApiError::Internal(e) => {
                error!(error = %e, "Database error while answering a request.");
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
