//! `schedule_fires`: the record that makes each slot fire once. A fire is
//! written, with the id of the command it will send, before the command is;
//! the unique key (zone, kind, slot) stops a second instance, a restart or
//! a late tick from firing it again. A fire whose command was never written
//! (the sender died in between) is handed out again with the same command
//! id, so the command path's own unique key still lets only one through.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::schedule::Kind;

/// A slot: a zone's irrigation time or lighting edge on one day.
pub type SlotKey = (i64, Kind, DateTime<Utc>);

fn kind_of(s: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// The slots since `from` that are settled: skipped, or fired with their
/// command written.
pub async fn settled(pool: &PgPool, from: DateTime<Utc>) -> Result<HashSet<SlotKey>, sqlx::Error> {
    let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT f.zone_id, f.kind, f.slot FROM schedule_fires f \
         WHERE f.slot >= $1 \
           AND (f.outcome = 'skipped' OR EXISTS (SELECT 1 FROM commands c WHERE c.cmd_id = f.cmd_id))",
    )
    .bind(from)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(zone, kind, slot)| Some((zone, kind_of(&kind)?, slot)))
        .collect())
}

/// Claims a slot for firing. Answers the command id to send the slot's
/// command with — `cmd_id` when the slot was free, the recorded one when a
/// fire was recorded but its command never written — or `None` when the
/// slot is settled.
pub async fn claim(
    pool: &PgPool,
    (zone_id, kind, slot): SlotKey,
    cmd_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO schedule_fires (zone_id, kind, slot, outcome, cmd_id) VALUES ($1, $2, $3, 'fired', $4) \
         ON CONFLICT (zone_id, kind, slot) DO UPDATE SET cmd_id = schedule_fires.cmd_id \
         WHERE schedule_fires.outcome = 'fired' \
           AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.cmd_id = schedule_fires.cmd_id) \
         RETURNING cmd_id",
    )
    .bind(zone_id)
    .bind(kind.as_str())
    .bind(slot)
    .bind(cmd_id)
    .fetch_optional(pool)
    .await
}

/// Records a slot as missed; true when this caller recorded it (and so
/// reports it), false when it was already settled.
pub async fn skip(pool: &PgPool, (zone_id, kind, slot): SlotKey) -> Result<bool, sqlx::Error> {
    let recorded = sqlx::query(
        "INSERT INTO schedule_fires (zone_id, kind, slot, outcome) VALUES ($1, $2, $3, 'skipped') \
         ON CONFLICT (zone_id, kind, slot) DO NOTHING",
    )
    .bind(zone_id)
    .bind(kind.as_str())
    .bind(slot)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(recorded == 1)
}
