//! The `commands` table: one row per command, whoever sent it, from QUEUED to
//! its final status. The only code that names it in SQL (migrations and
//! tests aside): here its rows and reads, in [`statuses`] its status
//! column ([`CommandStatus`] as text, the status writes, the timeout sweep).
//!
//! Used by `common::commands` (the send path and the status writer),
//! mqtt-bridge (API reads, responses, timeout sweeper, redelivery),
//! failover (unanswered commands as a broker signal), automation-engine
//! (the last dose of a pump) and scheduler (through
//! [`crate::store::schedule_fires`]).
//!
//! Locking: every statement that updates several rows locks them in
//! `cmd_id` order, so the writers cannot deadlock one another.

mod statuses;

pub use statuses::{apply_statuses, rank_sql, time_out_overdue};

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;

use crate::commands::Source;
use crate::commands::status::CommandStatus;

/// A row to insert: the command and where it goes.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub cmd_id: String,
    pub zone_id: i64,
    pub node_id: i64,
    pub channel: String,
    pub cmd: String,
    pub params: Value,
    pub source: Source,
    pub broker_id: String,
    pub request_hash: Option<String>,
}

/// Inserts QUEUED rows in one statement; answers whether each row was new:
/// `false` where the `cmd_id` exists already (also earlier in `rows`). A
/// runtime query: its arrays are as long as the batch.
pub async fn insert(db: impl PgExecutor<'_>, rows: &[NewRow]) -> Result<Vec<bool>, sqlx::Error> {
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO commands (cmd_id, zone_id, node_id, channel, cmd, params, source, broker_id, request_hash) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::text[]) \
         ON CONFLICT (cmd_id) DO NOTHING RETURNING cmd_id",
    )
    .bind(rows.iter().map(|r| r.cmd_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.zone_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.node_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.channel.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.cmd.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| &r.params).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.broker_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.request_hash.as_deref()).collect::<Vec<_>>())
    .fetch_all(db)
    .await?;
    let mut new: HashSet<String> = inserted.into_iter().collect();
    // The first request of a cmd_id gets the row; any later one is a duplicate.
    Ok(rows.iter().map(|r| new.remove(&r.cmd_id)).collect())
}

queries! {
    /// Marks an open command SEND_FAILED with `message`; true when it was open.
    pub fn mark_send_failed(db, cmd_id: &str, message: &str) -> bool {
        one_row(query!(
            "UPDATE commands SET status = 'SEND_FAILED', finished_at = now(), \
             error_code = 'send_failed', error_message = $2 \
             WHERE cmd_id = $1 AND finished_at IS NULL",
            cmd_id, message
        ))
    }

    /// Records the broker a command went out on.
    pub fn set_broker(db, cmd_id: &str, broker_id: &str) {
        execute(query!("UPDATE commands SET broker_id = $2 WHERE cmd_id = $1", cmd_id, broker_id))
    }
}

/// What a repeated `cmd_id` is answered from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayState {
    pub status: CommandStatus,
    pub request_hash: Option<String>,
    pub broker_id: Option<String>,
    pub error_message: Option<String>,
    pub node_uid: Option<String>,
}

queries! {
    /// The state of command `cmd_id`, for answering a repeated request.
    pub fn replay_state(db, cmd_id: &str) -> Option<ReplayState> {
        fetch_optional(query_as!(
            ReplayState,
            "SELECT c.status AS \"status: CommandStatus\", c.request_hash, c.broker_id, \
                    c.error_message, n.uid AS \"node_uid?\" \
             FROM commands c LEFT JOIN nodes n ON n.id = c.node_id WHERE c.cmd_id = $1",
            cmd_id
        ))
    }
}

/// A command's row, with its zone's and node's uids.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandDetail {
    pub cmd_id: String,
    pub zone_id: Option<i64>,
    pub zone_uid: Option<String>,
    pub node_id: Option<i64>,
    pub node_uid: Option<String>,
    pub channel: String,
    pub cmd: String,
    pub params: Value,
    pub status: CommandStatus,
    pub source: String,
    pub broker_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub ack_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

queries! {
    /// Command `cmd_id`, if it exists.
    pub fn detail(db, cmd_id: &str) -> Option<CommandDetail> {
        fetch_optional(query_as!(
            CommandDetail,
            "SELECT c.cmd_id, c.zone_id, z.uid AS \"zone_uid?\", c.node_id, \
                    n.uid AS \"node_uid?\", c.channel, c.cmd, c.params, \
                    c.status AS \"status: CommandStatus\", c.source, c.broker_id, c.error_code, \
                    c.error_message, c.result, c.created_at, c.sent_at, c.ack_at, c.finished_at \
             FROM commands c LEFT JOIN zones z ON z.id = c.zone_id \
             LEFT JOIN nodes n ON n.id = c.node_id \
             WHERE c.cmd_id = $1",
            cmd_id
        ))
    }
}

/// Where a command was sent: its row's node, channel, zone and greenhouse.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub cmd_id: String,
    pub node_uid: Option<String>,
    pub channel: String,
    pub zone_uid: Option<String>,
    pub greenhouse_uid: Option<String>,
}

queries! {
    /// Where each of `cmd_ids` was sent (commands that do not exist are absent).
    pub fn origins(db, cmd_ids: &[&str]) -> Vec<Origin> {
        fetch_all(query_as!(
            Origin,
            "SELECT c.cmd_id, n.uid AS \"node_uid?\", c.channel, z.uid AS \"zone_uid?\", \
                    g.uid AS \"greenhouse_uid?\" \
             FROM commands c LEFT JOIN nodes n ON n.id = c.node_id \
             LEFT JOIN zones z ON z.id = c.zone_id \
             LEFT JOIN greenhouses g ON g.id = z.greenhouse_id \
             WHERE c.cmd_id = ANY($1)",
            cmd_ids as _
        ))
    }
}

/// A SENT command stranded on a dead broker (see mqtt-bridge's redelivery).
#[derive(Debug, Clone, PartialEq)]
pub struct Stranded {
    pub cmd_id: String,
    pub cmd: String,
    pub params: Value,
    pub node_uid: String,
    pub channel: String,
}

macro_rules! stranded_query {
    ($route:tt) => {
        sqlx::query_as!(
            Stranded,
            "SELECT c.cmd_id, c.cmd, c.params, n.uid AS node_uid, c.channel FROM commands c \
             JOIN brokers b ON b.id = c.broker_id AND b.status = 'OFFLINE' \
             JOIN nodes n ON n.id = c.node_id \
             LEFT JOIN node_broker_assignments a ON a.node_id = c.node_id \
             WHERE c.finished_at IS NULL AND c.status = 'SENT' AND "
                + $route
                + " <> c.broker_id \
               AND (a.confirmed_at IS NOT NULL OR n.observed_broker_id = "
                + $route
                + ") \
             ORDER BY c.cmd_id LIMIT 500"
        )
    };
}

/// Open SENT commands on an OFFLINE broker whose node is now routed to
/// another broker where it really is (observed there, or its move there
/// confirmed); at most 500, by `cmd_id`.
pub async fn stranded(db: impl PgExecutor<'_>) -> Result<Vec<Stranded>, sqlx::Error> {
    crate::with_route_broker_sql!(stranded_query!())
        .fetch_all(db)
        .await
}

queries! {
    /// Brokers where at least 3 open commands of the last minute have waited
    /// `after` or longer for any answer while no open command there was
    /// acknowledged within `after`. Reads only open commands (a partial index).
    pub fn brokers_unanswered(db, after: Duration) -> Vec<String> {
        fetch_all(query_scalar!(
            "SELECT broker_id AS \"broker_id!\" FROM commands \
             WHERE finished_at IS NULL AND created_at > now() - interval '60 seconds' \
               AND broker_id IS NOT NULL \
             GROUP BY broker_id \
             HAVING count(*) FILTER (WHERE status = 'SENT' \
                                       AND sent_at < now() - make_interval(secs => $1)) >= 3 \
                AND count(*) FILTER (WHERE ack_at > now() - make_interval(secs => $1)) = 0",
            after.as_secs_f64()
        ))
    }
}

/// The newest command to a zone's channel.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LastCommand {
    pub zone_id: i64,
    pub channel: String,
    pub cmd_id: String,
    pub created_at: DateTime<Utc>,
    /// Whether it has no final status yet.
    pub open: bool,
}

/// The newest automation command to each (zone, channel) of `pairs` that
/// reached a broker (a SEND_FAILED one did nothing). A runtime query: its
/// arrays are as long as `pairs`.
pub async fn last_automation_per_channel(
    db: impl PgExecutor<'_>,
    pairs: &[(i64, String)],
) -> Result<Vec<LastCommand>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.zone_id, p.channel, c.cmd_id, c.created_at, c.finished_at IS NULL AS open \
         FROM UNNEST($1::int8[], $2::text[]) AS p (zone_id, channel) \
         CROSS JOIN LATERAL ( \
             SELECT cmd_id, created_at, finished_at FROM commands \
             WHERE source = 'automation' AND zone_id = p.zone_id AND channel = p.channel \
               AND status <> 'SEND_FAILED' \
             ORDER BY created_at DESC LIMIT 1 \
         ) c",
    )
    .bind(pairs.iter().map(|(z, _)| *z).collect::<Vec<_>>())
    .bind(pairs.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>())
    .fetch_all(db)
    .await
}
