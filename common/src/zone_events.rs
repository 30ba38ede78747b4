//! Writing `zone_events` rows: what happened in a zone and why, for the
//! operator (automation decisions, schedule fires, recipe phases). Events of
//! one cycle or tick go in one statement.

use serde_json::Value;
use sqlx::PgPool;

/// One event of one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneEvent {
    pub zone_id: i64,
    /// `zone_events.type`: `[A-Z0-9_]{1,64}`, e.g. `AUTOMATION_DOSE`.
    pub kind: &'static str,
    pub payload: Value,
}

impl ZoneEvent {
    pub fn new(zone_id: i64, kind: &'static str, payload: Value) -> Self {
        ZoneEvent {
            zone_id,
            kind,
            payload,
        }
    }
}

/// Inserts the events in one statement (none: no statement).
pub async fn insert(pool: &PgPool, events: &[ZoneEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO zone_events (zone_id, type, payload_json) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::jsonb[])",
    )
    .bind(events.iter().map(|e| e.zone_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.kind).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}
