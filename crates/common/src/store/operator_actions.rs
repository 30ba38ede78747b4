//! The `operator_actions` table: the audit trail of broker-registry's API.
//! Every write there (brokers added or changed, rebalances, suggestions
//! applied, strategy changes) records who made it and when; `GET
//! /api/actions` reads it back. Used by broker-registry only.

use serde::Serialize;
use serde_json::Value;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OperatorAction {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The operator's name (`X-Operator`), else `api-token`.
    pub actor: String,
    /// What was done, e.g. `broker.drain`, `rebalance`, `suggestion.apply`.
    pub action: String,
    /// On what, e.g. a broker id or `suggestion:12`.
    pub target: Option<String>,
    pub detail: Value,
}

queries! {
    /// Records that `actor` did `action` on `target`.
    pub fn record(db, actor: &str, action: &str, target: Option<&str>, detail: &Value) {
        execute(query!(
            "INSERT INTO operator_actions (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
            actor, action, target, detail
        ))
    }

    /// The latest `limit` entries, newest first.
    pub fn recent(db, limit: i64) -> Vec<OperatorAction> {
        fetch_all(query_as!(
            OperatorAction,
            "SELECT id, at, actor, action, target, detail FROM operator_actions \
             ORDER BY at DESC, id DESC LIMIT $1",
            limit
        ))
    }
}
