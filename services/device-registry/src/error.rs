//! The API's errors. Every variant documents its HTTP status; each answers
//! `{"status":"error","code":"<snake_case>","message":"<what to fix>"}`.
//! Database errors are logged and shown as an opaque 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::pushes::OpError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not a JSON object.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 422: a field is missing or has a value that is not acceptable.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 404: node, greenhouse, zone or route unknown.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: uid taken, node decommissioned, node not bound.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 503: no broker took the NodeConfig.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500: details only in the log.
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
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let message = e.to_string();
        match e {
            OpError::NodeNotFound(_) => ApiError::not_found("node_not_found", message),
            OpError::GreenhouseNotFound(_) => ApiError::not_found("greenhouse_not_found", message),
            OpError::ZoneNotFound(..) => ApiError::not_found("zone_not_found", message),
            OpError::UidTaken(_) => ApiError::Conflict {
                code: "uid_taken",
                message,
            },
            OpError::Decommissioned(_) => ApiError::Conflict {
                code: "node_decommissioned",
                message,
            },
            OpError::NotBound(_) => ApiError::Conflict {
                code: "node_not_bound",
                message,
            },
            OpError::Unreachable(..) => ApiError::Unavailable {
                code: "broker_unavailable",
                message,
            },
            OpError::BadConfig(_) => ApiError::Internal(message),
            OpError::Db(e) => ApiError::Internal(e.to_string()),
        }
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
            ApiError::Internal(e) => {
                error!(error = %e, "Internal error while answering a request.");
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
