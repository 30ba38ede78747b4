//! Writing `zone_events` rows: what happened in a zone and why, for the
//! operator (automation decisions, schedule fires, recipe phases, node status
//! changes, node events and errors). The events of one cycle, tick or batch
//! go in one statement.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;

/// One event of one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneEvent {
    /// `None` for a node that has no zone yet.
    pub zone_id: Option<i64>,
    /// `zone_events.type`: `[A-Z0-9_]{1,64}`, e.g. `AUTOMATION_DOSE`.
    pub kind: Cow<'static, str>,
    pub payload: Value,
    /// `server_ts`, when it happened; `None`: when it is written.
    pub at: Option<DateTime<Utc>>,
}

impl ZoneEvent {
    /// An event of `zone_id` that happens as it is written.
    pub fn new(zone_id: i64, kind: &'static str, payload: Value) -> Self {
        ZoneEvent {
            zone_id: Some(zone_id),
            kind: Cow::Borrowed(kind),
            payload,
            at: None,
        }
    }
}

/// Inserts the events in one statement (none: no statement).
pub async fn insert(db: impl PgExecutor<'_>, events: &[ZoneEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO zone_events (zone_id, type, payload_json, server_ts) \
         SELECT z, t, p, COALESCE(s, now()) \
           FROM UNNEST($1::int8[], $2::text[], $3::jsonb[], $4::timestamptz[]) AS e(z, t, p, s)",
    )
    .bind(events.iter().map(|e| e.zone_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.kind.as_ref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}
