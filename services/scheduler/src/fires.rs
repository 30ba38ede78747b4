//! `schedule_fires`: the record that makes each slot fire once. A fire is
//! written, with the id of the command it will send, before the command is;
//! the unique key (zone, kind, slot) stops a second instance, a restart or
//! a late tick from firing it again. A fire whose command was never written
//! (the sender died in between) is handed out again with the same command
//! id, so the command path's own unique key still lets only one through.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use common::store::schedule_fires;
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
    let slots = schedule_fires::settled(pool, from).await?;
    Ok(slots
        .into_iter()
        .filter_map(|s| Some((s.zone_id, kind_of(&s.kind)?, s.slot)))
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
    schedule_fires::claim(pool, zone_id, kind.as_str(), slot, cmd_id).await
}

/// Records a slot as missed; true when this caller recorded it (and so
/// reports it), false when it was already settled.
pub async fn skip(pool: &PgPool, (zone_id, kind, slot): SlotKey) -> Result<bool, sqlx::Error> {
    schedule_fires::skip(pool, zone_id, kind.as_str(), slot).await
}
