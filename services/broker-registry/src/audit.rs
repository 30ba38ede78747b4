//! Who made a write through the API ([`Operator`]: the `X-Operator` header,
//! else `api-token`, the bearer token being the credential, never stored)
//! and the audit entry every write records ([`Operator::record`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;
use sqlx::PgPool;

use crate::error::ApiError;

/// The header naming the operator.
pub const HEADER: &str = "x-operator";
/// The actor of a write that names no operator.
pub const TOKEN_ACTOR: &str = "api-token";
/// The longest operator name (the `operator_actions.actor` CHECK).
pub const MAX_OPERATOR_CHARS: usize = 64;

/// The author of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator(pub String);

/// Checks an `X-Operator` value: 1 to 64 printable characters.
pub fn check_operator(name: &str) -> Result<&str, String> {
    let name = name.trim();
    let chars = name.chars().count();
    if (1..=MAX_OPERATOR_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
        Ok(name)
    } else {
        Err(format!(
            "`X-Operator` must be 1 to {MAX_OPERATOR_CHARS} printable characters"
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Operator(TOKEN_ACTOR.to_owned()));
        };
        let text = std::str::from_utf8(value.as_bytes()).unwrap_or("\u{0}");
        check_operator(text)
            .map(|n| Operator(n.to_owned()))
            .map_err(|e| ApiError::bad_request("invalid_operator", e))
    }
}

impl Operator {
    /// Records that this operator did `action` on `target`.
    pub async fn record(
        &self,
        pool: &PgPool,
        action: &str,
        target: Option<&str>,
        detail: Value,
    ) -> Result<(), ApiError> {
        common::store::operator_actions::record(pool, &self.0, action, target, &detail).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_are_checked() {
        assert_eq!(check_operator(" anna "), Ok("anna"));
        assert_eq!(check_operator("Ира К."), Ok("Ира К."));
        assert!(check_operator("").is_err());
        assert!(check_operator("a\u{7}b").is_err());
        assert!(check_operator(&"x".repeat(65)).is_err());
        assert!(check_operator(&"я".repeat(64)).is_ok());
    }
}
