//! The `broker_status_changes` table: one row per change of a broker's
//! status, written by `placement::broker_status::set_status` in the
//! transaction that changes it; read for broker-registry's advisor (which
//! brokers came back from OFFLINE recently) and its `GET /api/status-changes`.

use crate::placement::broker_status::BrokerStatus;
use serde::Serialize;
use serde_json::Value;

/// A broker's latest return from OFFLINE.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Recovery {
    pub broker_id: String,
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

queries! {
    /// Each broker's latest change from OFFLINE to another status within the
    /// last `within_secs`.
    pub fn recent_recoveries(db, within_secs: f64) -> Vec<Recovery> {
        fetch_all(query_as!(
            Recovery,
            r#"SELECT broker_id, max(changed_at) AS "changed_at!" FROM broker_status_changes
               WHERE from_status = 'OFFLINE' AND to_status <> 'OFFLINE'
                 AND changed_at > now() - make_interval(secs => $1)
               GROUP BY broker_id ORDER BY broker_id"#,
            within_secs
        ))
    }

    /// Records that `broker` went from `from` to `to` for `reason`.
    pub fn record(db, broker: &str, from: BrokerStatus, to: BrokerStatus, reason: &str) {
        execute(query!(
            "INSERT INTO broker_status_changes (broker_id, from_status, to_status, reason) \
             VALUES ($1, $2, $3, $4)",
            broker, from.as_str(), to.as_str(), reason
        ))
    }

    /// The latest `limit` changes, newest first, each as a JSON object of every
    /// column (the API shows them as they are stored).
    pub fn latest_json(db, limit: i64) -> Vec<Value> {
        fetch_all(query_scalar!(
            r#"SELECT to_jsonb(c) AS "change!" FROM (SELECT * FROM broker_status_changes
               ORDER BY changed_at DESC, id DESC LIMIT $1) c"#,
            limit
        ))
    }
}
