//! Bearer-token auth for a service's API: every route behind
//! [`require_token`] answers 401 (JSON, as every API error) unless the
//! request carries `Authorization: Bearer <token>`; behind [`require_access`]
//! writes always need it and reads as the service is configured
//! ([`Access`]). Tokens are compared in constant time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
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

/// Who may call a service's API: writes (every method but GET, HEAD and
/// OPTIONS) need the token; reads need it when `reads_require_token`.
/// Without a token every request passes (a development set-up; production
/// refuses to start without one, see `Settings::refuse_dev_defaults`).
#[derive(Clone)]
pub struct Access {
    pub token: ApiToken,
    pub reads_require_token: bool,
}

impl Access {
    pub fn new(token: ApiToken, reads_require_token: bool) -> Self {
        Access {
            token,
            reads_require_token,
        }
    }

    /// Whether `method` only reads.
    fn is_read(method: &Method) -> bool {
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// Whether a request with `method` must show the token.
    pub fn needs_token(&self, method: &Method) -> bool {
        self.token.0.is_some() && (self.reads_require_token || !Self::is_read(method))
    }
}

/// Middleware: 401 unless the request is a read that [`Access`] leaves open
/// or carries the right bearer token.
pub async fn require_access(
    State(access): State<Access>,
    request: Request,
    next: Next,
) -> Response {
    if !access.needs_token(request.method()) {
        return next.run(request).await;
    }
    require_token(State(access.token), request, next).await
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

/// The token of an `Authorization` value: `Bearer <token>`, the scheme in
/// any case (RFC 7235).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
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
        .and_then(bearer);
    match presented {
        None => unauthorized("send the API token as `Authorization: Bearer <token>`"),
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn writes_always_need_the_token_reads_as_configured() {
        let token = ApiToken(Some(Arc::from("t")));
        let open_reads = Access::new(token.clone(), false);
        assert!(!open_reads.needs_token(&Method::GET));
        assert!(!open_reads.needs_token(&Method::HEAD));
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(open_reads.needs_token(&m), "{m}");
        }
        let guarded = Access::new(token, true);
        assert!(guarded.needs_token(&Method::GET));
        let none = Access::new(ApiToken(None), true);
        assert!(!none.needs_token(&Method::POST));
    }

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
