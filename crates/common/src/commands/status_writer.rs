//! Applies command status changes to the `commands` rows: SENT marks from the
//! send path and node responses from mqtt-bridge's consumer, through one
//! group-committed statement (see [`crate::runtime::batcher`]).
//!
//! One writer for both keeps two kinds of statement from fighting over the
//! same rows (a node often answers ACK before its SENT mark is written): a
//! SENT mark and the node's ACK usually fold into the same statement. The
//! rules of [`crate::commands::status`] hold in SQL: a status only moves to a
//! higher rank; a late SENT mark still fills in `sent_at`; the first final
//! status wins with its details. The times keep their order whichever is
//! written first: `sent_at` is never after the node's answers and `ack_at`
//! never after `finished_at`. The SENT mark's clock is read after the
//! broker's PUBACK, which can come after the node's ACK arrived, so an answer
//! dated earlier pulls the mark back to it.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::commands::status::{CommandStatus, rank_sql};
use crate::metrics as m;
use crate::runtime::batcher::{BatchError, Batcher};

/// One status change of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub cmd_id: String,
    pub status: CommandStatus,
    /// When it happened (the broker's PUBACK, the response's arrival).
    pub at: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The final response's `details`.
    pub result: Option<Value>,
}

impl StatusUpdate {
    pub fn new(cmd_id: &str, status: CommandStatus, at: DateTime<Utc>) -> Self {
        StatusUpdate {
            cmd_id: cmd_id.to_owned(),
            status,
            at,
            error_code: None,
            error_message: None,
            result: None,
        }
    }
}

/// What a batch says about one command, all its updates folded together.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub status: CommandStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub ack_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<Value>,
}

/// Folds a batch into one change per command: the furthest status, when it
/// was sent and acknowledged, and the details of the first final status.
pub fn fold(updates: &[StatusUpdate]) -> HashMap<&str, Folded> {
    let mut out: HashMap<&str, Folded> = HashMap::new();
    for u in updates {
        let f = out.entry(u.cmd_id.as_str()).or_insert(Folded {
            status: CommandStatus::Queued,
            sent_at: None,
            ack_at: None,
            finished_at: None,
            error_code: None,
            error_message: None,
            result: None,
        });
        match u.status {
            CommandStatus::Sent => {
                f.sent_at.get_or_insert(u.at);
            }
            CommandStatus::Ack => {
                f.ack_at.get_or_insert(u.at);
            }
            s if s.is_final() && !f.status.is_final() => {
                f.finished_at = Some(u.at);
                f.error_code = u.error_code.clone();
                f.error_message = u.error_message.clone();
                f.result = u.result.clone();
            }
            _ => {}
        }
        f.status = f.status.advance(u.status);
    }
    out
}

static APPLY_SQL: LazyLock<String> = LazyLock::new(|| {
    let new = rank_sql("v.status");
    let old = rank_sql("c.status");
    let moves = format!("{new} > {old}");
    let finishes = format!("{new} = 3 AND {old} < 3");
    // The row's times after this update, before ordering them.
    let finished = format!("CASE WHEN {finishes} THEN v.finished_at ELSE c.finished_at END");
    let acked = "COALESCE(c.ack_at, v.ack_at)";
    let sent = "COALESCE(c.sent_at, v.sent_at)";
    // Rows are locked in cmd_id order, as every multi-row writer of `commands`
    // does, so it cannot deadlock with the sweeper.
    format!(
        "WITH v AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
                                       $5::timestamptz[], $6::text[], $7::text[], $8::jsonb[]) \
                    AS v(cmd_id, status, sent_at, ack_at, finished_at, error_code, error_message, result)), \
              locked AS (SELECT c.cmd_id FROM commands c JOIN v ON v.cmd_id = c.cmd_id ORDER BY c.cmd_id FOR UPDATE OF c) \
         UPDATE commands c SET \
             status = CASE WHEN {moves} THEN v.status ELSE c.status END, \
             sent_at = CASE WHEN {sent} IS NOT NULL THEN LEAST({sent}, {acked}, {finished}) END, \
             ack_at = CASE WHEN {acked} IS NOT NULL THEN LEAST({acked}, {finished}) END, \
             finished_at = {finished}, \
             error_code = CASE WHEN {finishes} THEN v.error_code ELSE c.error_code END, \
             error_message = CASE WHEN {finishes} THEN v.error_message ELSE c.error_message END, \
             result = CASE WHEN {finishes} THEN v.result ELSE c.result END \
         FROM v, locked \
         WHERE c.cmd_id = locked.cmd_id AND c.cmd_id = v.cmd_id \
           AND ({moves} OR (c.sent_at IS NULL AND v.sent_at IS NOT NULL)) \
         RETURNING CASE WHEN {finishes} THEN v.status END"
    )
});

/// Applies a batch; returns the final statuses it set (for metrics).
pub async fn apply(pool: &PgPool, updates: &[StatusUpdate]) -> Result<Vec<String>, sqlx::Error> {
    let folded = fold(updates);
    let mut cols = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for (id, f) in &folded {
        cols.0.push(*id);
        cols.1.push(f.status.as_str());
        cols.2.push(f.sent_at);
        cols.3.push(f.ack_at);
        cols.4.push(f.finished_at);
        cols.5.push(f.error_code.as_deref());
        cols.6.push(f.error_message.as_deref());
        cols.7.push(f.result.clone());
    }
    // Not a cached prepared statement: a generic plan made while `commands`
    // was small keeps seq-scanning it as it grows; this is planned with the
    // real sizes on each (batched, so rare) execution.
    let finished: Vec<Option<String>> = sqlx::query_scalar(&APPLY_SQL)
        .persistent(false)
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .bind(&cols.5)
        .bind(&cols.6)
        .bind(&cols.7)
        .fetch_all(pool)
        .await?;
    Ok(finished.into_iter().flatten().collect())
}

/// The most updates folded into one statement.
const MAX_BATCH: usize = 2048;
/// One statement at a time: the path is CPU-bound, and fewer, larger
/// batches cost less per update than two writers' smaller ones (measured).
const WRITERS: usize = 1;

/// Hands status updates to the one writer; cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    batcher: Batcher<StatusUpdate, ()>,
}

impl StatusWriter {
    /// Starts the writer; call inside the runtime.
    pub fn spawn(pool: PgPool) -> Self {
        let batcher = Batcher::spawn(WRITERS, MAX_BATCH, move |updates: Vec<StatusUpdate>| {
            let pool = pool.clone();
            async move {
                let n = updates.len();
                metrics::histogram!(m::COMMAND_STATUS_BATCH_SIZE).record(n as f64);
                for status in apply(&pool, &updates).await? {
                    metrics::counter!(m::COMMANDS_FINISHED, "status" => status).increment(1);
                }
                Ok::<_, sqlx::Error>(vec![(); n])
            }
        });
        StatusWriter { batcher }
    }

    /// Applies one update and waits until it is committed.
    pub async fn write(&self, update: StatusUpdate) -> Result<(), BatchError> {
        self.batcher.call(update).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandStatus::*;

    fn u(id: &str, s: CommandStatus, ms: i64) -> StatusUpdate {
        StatusUpdate::new(id, s, DateTime::from_timestamp_millis(ms).unwrap())
    }

    #[test]
    fn sent_ack_done_in_one_batch() {
        let updates = [u("a", Ack, 2), u("a", Sent, 1), u("a", Done, 3)];
        let f = &fold(&updates)["a"];
        assert_eq!(f.status, Done);
        assert_eq!(f.sent_at.unwrap().timestamp_millis(), 1);
        assert_eq!(f.ack_at.unwrap().timestamp_millis(), 2);
        assert_eq!(f.finished_at.unwrap().timestamp_millis(), 3);
    }

    #[test]
    fn first_final_wins_and_nothing_goes_back() {
        let mut late = u("a", Error, 5);
        late.error_code = Some("late".into());
        let updates = [u("a", Done, 4), u("a", Ack, 1), late];
        let f = &fold(&updates)["a"];
        assert_eq!(f.status, Done);
        assert_eq!(f.error_code, None);
        assert_eq!(f.finished_at.unwrap().timestamp_millis(), 4);
    }

    #[test]
    fn commands_are_kept_apart() {
        let updates = [u("a", Sent, 1), u("b", Invalid, 2)];
        let f = fold(&updates);
        assert_eq!(f["a"].status, Sent);
        assert_eq!(f["b"].status, Invalid);
        assert_eq!(f["b"].sent_at, None);
    }
}
