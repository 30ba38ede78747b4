//! Telemetry rows: `telemetry_samples` by `COPY`, and `telemetry_last`
//! upserted once per key per batch, never back in time — except from a row
//! stamped after the database's clock, which any reading replaces (so one
//! reading from a clock that ran ahead cannot freeze the key).
//!
//! The future: decoding refused a `ts` more than the configured skew ahead.
//! A reading within the skew (a node clock running ahead) is history and is
//! stored in `telemetry_samples`, but `telemetry_last` — the current value
//! automation and dashboards read — takes no reading more than
//! [`LAST_MAX_AHEAD_SEC`] after this service's clock.
//!
//! Same second: the wire `ts` has whole seconds and a sample's key is
//! (node, channel, metric, `ts`). The first reading of a key and second is
//! kept; a later one with the same value and raw is a redelivery and a
//! no-op; a later one that differs is refused (`same_second`), so the caller
//! keeps it aside and counts it. Only kept readings reach `telemetry_last`,
//! so `telemetry_last` always holds a row of `telemetry_samples`.
//!
//! The statements are `common::store::telemetry_samples` (`COPY`, else an
//! `UNNEST` insert) and `common::store::telemetry_last`.

use std::collections::HashMap;

use chrono::Utc;
use common::store::{telemetry_last, telemetry_samples};
use sqlx::PgConnection;

/// How far (seconds) a reading's `ts` may be after our clock and still
/// become `telemetry_last`: node clocks are synced in whole seconds, so a
/// current reading can look a second or two ahead.
pub const LAST_MAX_AHEAD_SEC: i64 = 5;

pub use common::store::telemetry_samples::Sample;

/// Whether `b` says the same as `a` (a redelivery, not a second reading).
fn same_reading(a: &Sample, b: &Sample) -> bool {
    a.value == b.value && a.raw == b.raw
}

/// What [`write`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Rows inserted (redeliveries not counted).
    pub inserted: u64,
    /// Readings that repeated one already stored or earlier in the batch
    /// (same key, second, value and raw): redeliveries, absorbed.
    pub redelivered: u64,
    /// Indexes (into the samples given) of readings refused because another,
    /// different reading of the same key and second is stored (`same_second`);
    /// sorted.
    pub refused: Vec<usize>,
}

/// Groups a batch by row key: the first reading of each key and second
/// leads (indexes, in batch order); every later one follows its leader
/// (`(follower, leader)`).
pub fn first_per_second(samples: &[Sample]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut first: HashMap<(i64, &str, &str, i64), usize> = HashMap::new();
    let mut leaders = Vec::new();
    let mut followers = Vec::new();
    for (k, s) in samples.iter().enumerate() {
        match first.entry(s.row_key()) {
            std::collections::hash_map::Entry::Occupied(e) => followers.push((k, *e.get())),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(k);
                leaders.push(k);
            }
        }
    }
    (leaders, followers)
}

/// The readings refused as `same_second` (sorted): of each key and second,
/// the reading already stored (`stored`, by leader, for the leaders that were
/// not inserted) or else the leader wins; every other reading that differs
/// from the winner is refused, one that is the same is a redelivery.
pub fn refusals(
    samples: &[Sample],
    leaders: &[usize],
    followers: &[(usize, usize)],
    stored: &HashMap<usize, (f64, Option<i64>)>,
) -> Vec<usize> {
    let differs = |s: &Sample, leader: usize| match stored.get(&leader) {
        Some((value, raw)) => s.value != *value || s.raw != *raw,
        None => !same_reading(&samples[leader], s),
    };
    let mut refused: Vec<usize> = leaders
        .iter()
        .copied()
        .filter(|l| differs(&samples[*l], *l))
        .chain(
            followers
                .iter()
                .filter(|(f, l)| differs(&samples[*f], *l))
                .map(|(f, _)| *f),
        )
        .collect();
    refused.sort_unstable();
    refused
}

/// The newest sample per (node, channel, metric) of a batch, sorted by key
/// (so concurrent writers lock rows in the same order). Of two samples with
/// the same `ts`, the first in the batch wins, as in `telemetry_samples`.
pub fn latest_per_key<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Vec<&'a Sample> {
    let mut newest: HashMap<(i64, &str, &str), &Sample> = HashMap::new();
    for s in samples {
        newest
            .entry(s.key())
            .and_modify(|kept| {
                if s.ts > kept.ts {
                    *kept = s;
                }
            })
            .or_insert(s);
    }
    let mut rows: Vec<&Sample> = newest.into_values().collect();
    rows.sort_by(|a, b| a.key().cmp(&b.key()));
    rows
}

/// Inserts the samples (redeliveries are no-ops, a different reading of a
/// stored key and second is refused) and moves `telemetry_last` forward with
/// the kept ones that are not from the future.
pub async fn write(conn: &mut PgConnection, samples: &[Sample]) -> Result<Outcome, sqlx::Error> {
    if samples.is_empty() {
        return Ok(Outcome::default());
    }
    let (mut leaders, followers) = first_per_second(samples);
    leaders.sort_by(|a, b| samples[*a].row_key().cmp(&samples[*b].row_key()));
    let rows: Vec<&Sample> = leaders.iter().map(|k| &samples[*k]).collect();
    let (inserted, stored) = telemetry_samples::insert_new(conn, &rows).await?;
    let stored: HashMap<usize, (f64, Option<i64>)> = stored
        .into_iter()
        .map(|(r, reading)| (leaders[r], reading))
        .collect();
    let refused = refusals(samples, &leaders, &followers, &stored);
    let not_after = Utc::now().timestamp() + LAST_MAX_AHEAD_SEC;
    telemetry_last::advance(
        conn,
        &latest_per_key(
            leaders
                .iter()
                .filter(|k| refused.binary_search(k).is_err())
                .map(|k| &samples[*k])
                .filter(|s| s.ts <= not_after),
        ),
    )
    .await?;
    let redelivered = (samples.len() - refused.len()) as u64 - inserted;
    Ok(Outcome {
        inserted,
        redelivered,
        refused,
    })
}

#[cfg(test)]
mod tests;
