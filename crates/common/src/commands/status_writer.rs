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

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::commands::CommandError;
use crate::commands::status::{CommandStatus, Folded};
use crate::metrics as m;
use crate::runtime::batcher::Batcher;

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

/// Applies a batch; returns the final statuses it set (for metrics).
pub async fn apply(
    pool: &PgPool,
    updates: &[StatusUpdate],
) -> Result<Vec<CommandStatus>, sqlx::Error> {
    crate::store::commands::apply_statuses(pool, &fold(updates)).await
}

/// The most updates folded into one statement.
const MAX_BATCH: usize = 2048;
/// One statement at a time: the path is CPU-bound, and fewer, larger
/// batches cost less per update than two writers' smaller ones (measured).
const WRITERS: usize = 1;

/// Hands status updates to the one writer; cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    batcher: Batcher<StatusUpdate, (), sqlx::Error>,
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
                    metrics::counter!(m::COMMANDS_FINISHED, "status" => status.as_str())
                        .increment(1);
                }
                Ok::<_, sqlx::Error>(vec![(); n])
            }
        });
        StatusWriter { batcher }
    }

    /// Applies one update and waits until it is committed.
    pub async fn write(&self, update: StatusUpdate) -> Result<(), CommandError> {
        Ok(self.batcher.call(update).await?)
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
