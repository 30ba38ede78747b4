//! Every error as JSON: the body and URI limits, unknown routes and
//! methods, the rejections of axum's extractors.

use axum::Json;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The largest request body any service takes: every API body is a small
/// JSON object (a command, a bind, a broker). Larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest request target (path and query) any service takes: a JSON
/// 414 beyond it. hyper refuses a target of 64 KiB or more itself, with an
/// empty 414 (and a request head over about 400 KiB with an empty 431),
/// before any service code runs; only that far-off limit is not JSON.
pub const MAX_URI_BYTES: usize = 8 * 1024;

pub(super) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "status": "error", "code": code, "message": message })),
    )
        .into_response()
}

pub(super) async fn route_not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such endpoint; see the README for the API",
    )
}

pub(super) async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Whether `headers` say the body is JSON (`application/json`, `…+json`).
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// Middleware: the checks every request passes before its handler: a target
/// no longer than [`MAX_URI_BYTES`] (414), and a body, if it says what it
/// is, that is JSON (415). A body without `Content-Type` is taken as JSON.
pub async fn check_request(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return json_error(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request path and query are {target} bytes; the limit is {MAX_URI_BYTES}"),
        );
    }
    let has_body = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_none_or(|n| n > 0);
    if has_body && request.headers().contains_key(CONTENT_TYPE) && !is_json(request.headers()) {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        );
    }
    next.run(request).await
}

/// The `code` of an error answer that was not ours (an extractor's or the
/// framework's rejection), from its status and text.
pub(super) fn rejection_code(status: StatusCode, text: &str) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST if text.starts_with("Failed to deserialize query string") => {
            "invalid_query"
        }
        StatusCode::BAD_REQUEST
            if text.starts_with("Invalid URL") || text.contains("path argument") =>
        {
            "invalid_path"
        }
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal_error",
        _ => "request_refused",
    }
}

/// Middleware: every error answer is JSON, in the one shape of
/// [`crate::runtime::api_error::ApiError`]. Handlers' errors already are; this turns
/// the rest (axum's rejections of a path, query or body, a body over
/// [`MAX_BODY_BYTES`]) into it, keeping their status and their text as the
/// message, which names what was wrong (e.g. the query field).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are a line; more is cut, not buffered.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    } else {
        text
    };
    let mut answer = json_error(status, rejection_code(status, &message), &message);
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer
}
