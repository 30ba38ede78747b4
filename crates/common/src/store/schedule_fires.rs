//! The `schedule_fires` table: the record that makes each scheduler slot
//! fire once (see scheduler's `fires` for the rules). Its queries also ask
//! whether a fire's command was written, so they name `commands` too; they
//! live here because their rows are fires. Used by scheduler. A slot's kind
//! is the scheduler's `Kind`, stored as its text.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A slot: a zone's `kind` (its text) at `slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub zone_id: i64,
    pub kind: String,
    pub slot: DateTime<Utc>,
}

queries! {
    /// The slots since `from` that are settled: skipped, or fired with their
    /// command written.
    pub fn settled(db, from: DateTime<Utc>) -> Vec<Slot> {
        fetch_all(query_as!(
            Slot,
            "SELECT f.zone_id, f.kind, f.slot FROM schedule_fires f \
             WHERE f.slot >= $1 \
               AND (f.outcome = 'skipped' \
                    OR EXISTS (SELECT 1 FROM commands c WHERE c.cmd_id = f.cmd_id))",
            from
        ))
    }
}

/// Claims a slot for firing with `cmd_id`. Answers the command id to send
/// the slot's command with — `cmd_id` when the slot was free, the recorded
/// one when a fire was recorded but its command never written — or `None`
/// when the slot is settled.
pub async fn claim(
    db: impl PgExecutor<'_>,
    zone_id: i64,
    kind: &str,
    slot: DateTime<Utc>,
    cmd_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let claimed = sqlx::query_scalar!(
        "INSERT INTO schedule_fires (zone_id, kind, slot, outcome, cmd_id) VALUES ($1, $2, $3, 'fired', $4) \
         ON CONFLICT (zone_id, kind, slot) DO UPDATE SET cmd_id = schedule_fires.cmd_id \
         WHERE schedule_fires.outcome = 'fired' \
           AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.cmd_id = schedule_fires.cmd_id) \
         RETURNING cmd_id",
        zone_id,
        kind,
        slot,
        cmd_id
    )
    .fetch_optional(db)
    .await?;
    Ok(claimed.flatten())
}

queries! {
    /// Records a slot as missed; true when this call recorded it, false when it
    /// was already settled.
    pub fn skip(db, zone_id: i64, kind: &str, slot: DateTime<Utc>) -> bool {
        one_row(query!(
            "INSERT INTO schedule_fires (zone_id, kind, slot, outcome) \
             VALUES ($1, $2, $3, 'skipped') \
             ON CONFLICT (zone_id, kind, slot) DO NOTHING",
            zone_id, kind, slot
        ))
    }
}
