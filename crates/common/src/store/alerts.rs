//! The `alerts` table: an operator's open problems. An alert is raised once
//! (the schema keeps one ACTIVE alert per type and subject, so raising it
//! again changes nothing) and resolved when its cause is gone. The subject
//! is a broker, a node (with its zone) or nothing (a service-wide alert).

use serde_json::Value;
use sqlx::PgExecutor;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The whole service (e.g. too many zones failed a cycle).
    Service,
    /// One broker, by id.
    Broker(&'a str),
}

impl<'a> Subject<'a> {
    /// `alerts.broker_id` of the subject.
    fn broker_id(self) -> Option<&'a str> {
        match self {
            Subject::Service => None,
            Subject::Broker(id) => Some(id),
        }
    }
}

queries! {
    /// Raises alert `kind` about `subject` (a no-op while it is active).
    pub fn raise(db, kind: &str, subject: Subject<'_>, details: &Value) {
        execute(query!(
            "INSERT INTO alerts (type, broker_id, details) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            kind, subject.broker_id(), details
        ))
    }

    /// Resolves the active alert `kind` about `subject`, if any.
    pub fn resolve(db, kind: &str, subject: Subject<'_>) {
        execute(query!(
            "UPDATE alerts SET status = 'RESOLVED', resolved_at = now(), updated_at = now() \
             WHERE type = $1 AND broker_id IS NOT DISTINCT FROM $2 AND status = 'ACTIVE'",
            kind, subject.broker_id()
        ))
    }
}

/// Raises alert `kind` for each node of `nodes` (`(zone, node, details)`),
/// in one statement; those already active are left as they are.
pub async fn raise_for_nodes(
    db: impl PgExecutor<'_>,
    kind: &str,
    nodes: &[(Option<i64>, i64, Value)],
) -> Result<(), sqlx::Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO alerts (type, zone_id, node_id, details)
         SELECT $1, * FROM UNNEST($2::int8[], $3::int8[], $4::jsonb[])
         ON CONFLICT DO NOTHING",
    )
    .bind(kind)
    .bind(nodes.iter().map(|n| n.0).collect::<Vec<_>>())
    .bind(nodes.iter().map(|n| n.1).collect::<Vec<_>>())
    .bind(nodes.iter().map(|n| &n.2).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

/// Resolves the active alerts `kind` of `nodes`, in one statement.
pub async fn resolve_for_nodes(
    db: impl PgExecutor<'_>,
    kind: &str,
    nodes: &[i64],
) -> Result<(), sqlx::Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE alerts SET status = 'RESOLVED', resolved_at = now(), updated_at = now()
          WHERE type = $1 AND node_id = ANY($2) AND status = 'ACTIVE'",
        kind,
        nodes
    )
    .execute(db)
    .await?;
    Ok(())
}
