//! Bearer-token auth for a service's API: every route behind
//! [`require_token`] answers 401 (JSON, as every API error) unless the
//! request carries `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The expected token; `None` leaves the API open.
#[derive(Clone)]
pub struct ApiToken(pub Option<Arc<str>>);

impl ApiToken {
    /// From a secret setting.
    pub fn from_secret(secret: Option<&secrecy::SecretString>) -> Self {
        use secrecy::ExposeSecret;
        ApiToken(secret.map(|t| Arc::from(t.expose_secret())))
    }
}

/// Compares in time independent of where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "status": "error", "code": "unauthorized", "message": message })),
    )
        .into_response()
}

/// Middleware: 401 unless `Authorization: Bearer <token>` matches.
pub async fn require_token(
    State(token): State<ApiToken>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token.0 else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        None => unauthorized("send the API token as `Authorization: Bearer <token>`"),
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
