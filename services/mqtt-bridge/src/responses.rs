//! Applies `command_response` messages from every broker to the command rows,
//! for every command whoever sent it.
//!
//! Messages are taken in batches (everything waiting, up to `MAX_BATCH`) and
//! applied in one UPDATE, so the cost per response falls as load rises. A
//! status only moves forward (`command_status_rank`), so order within and
//! across batches does not matter and a duplicate changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::command_status::CommandStatus;
use common::metrics as m;
use common::mqtt::Inbound;
use common::payloads::CommandResponse;
use common::topics::{NodeTopic, TopicKind};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The most responses applied in one statement.
pub const MAX_BATCH: usize = 2000;

/// What one batch says about one command, reduced from all its responses.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    pub status: CommandStatus,
    pub ack_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<Value>,
}

/// Folds a batch into one update per command: the furthest status, when it
/// was acknowledged, and the details of the first final response.
pub fn reduce(batch: Vec<(CommandResponse, DateTime<Utc>)>) -> HashMap<String, Reduced> {
    let mut out: HashMap<String, Reduced> = HashMap::new();
    for (response, at) in batch {
        let status = CommandStatus::from(response.status);
        let entry = out.entry(response.cmd_id).or_insert(Reduced {
            status: CommandStatus::Sent,
            ack_at: None,
            finished_at: None,
            error_code: None,
            error_message: None,
            result: None,
        });
        if status == CommandStatus::Ack {
            entry.ack_at.get_or_insert(at);
        }
        if status.is_final() && !entry.status.is_final() {
            entry.finished_at = Some(at);
            entry.error_code = response.error_code;
            entry.error_message = response.error_message.or(response.message);
            entry.result = response.details.map(Value::Object);
        }
        entry.status = entry.status.advance(status);
    }
    out
}

/// Applies one reduced batch; returns the commands that reached a final status.
pub async fn apply(
    pool: &PgPool,
    batch: &HashMap<String, Reduced>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut ids = Vec::with_capacity(batch.len());
    let mut statuses = Vec::with_capacity(batch.len());
    let mut acks = Vec::with_capacity(batch.len());
    let mut finishes = Vec::with_capacity(batch.len());
    let mut codes = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    let mut results = Vec::with_capacity(batch.len());
    for (id, r) in batch {
        ids.push(id.as_str());
        statuses.push(r.status.as_str());
        acks.push(r.ack_at);
        finishes.push(r.finished_at);
        codes.push(r.error_code.as_deref());
        messages.push(r.error_message.as_deref());
        results.push(r.result.clone());
    }
    let finished: Vec<Option<String>> = sqlx::query_scalar(
        "UPDATE commands c SET \
             status = v.status, \
             ack_at = COALESCE(c.ack_at, v.ack_at), \
             finished_at = CASE WHEN command_status_rank(v.status) = 3 THEN v.finished_at ELSE NULL END, \
             error_code = CASE WHEN command_status_rank(v.status) = 3 THEN v.error_code ELSE c.error_code END, \
             error_message = CASE WHEN command_status_rank(v.status) = 3 THEN v.error_message ELSE c.error_message END, \
             result = CASE WHEN command_status_rank(v.status) = 3 THEN v.result ELSE c.result END \
         FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::jsonb[]) \
              AS v(cmd_id, status, ack_at, finished_at, error_code, error_message, result) \
         WHERE c.cmd_id = v.cmd_id AND command_status_rank(v.status) > command_status_rank(c.status) \
         RETURNING CASE WHEN command_status_rank(c.status) = 3 THEN c.status END",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&acks)
    .bind(&finishes)
    .bind(&codes)
    .bind(&messages)
    .bind(&results)
    .fetch_all(pool)
    .await?;
    Ok(finished.into_iter().flatten().collect())
}

/// Decodes one message; `None` (counted and logged) when it is not a response.
fn decode(message: &Inbound) -> Option<CommandResponse> {
    let reason = match NodeTopic::parse(&message.topic) {
        Ok(t) if t.kind == TopicKind::CommandResponse => {
            match CommandResponse::decode(&message.payload) {
                Ok(r) => return Some(r),
                Err(e) => {
                    debug!(topic = %message.topic, error = %e, "Dropped an invalid command response.");
                    e.reason()
                }
            }
        }
        _ => "bad_topic",
    };
    metrics::counter!(m::COMMAND_RESPONSES_DROPPED, "reason" => reason).increment(1);
    None
}

/// Consumes responses until `shutdown`, then applies what it already took.
pub async fn run(pool: PgPool, mut inbox: mpsc::Receiver<Inbound>, shutdown: CancellationToken) {
    let mut buffer = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => None,
            m = inbox.recv() => m,
        };
        let Some(first) = first else { break };
        let received = Utc::now();
        let mut batch = Vec::new();
        buffer.push(first);
        while buffer.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(m) => buffer.push(m),
                Err(_) => break,
            }
        }
        for message in buffer.drain(..) {
            if let Some(r) = decode(&message) {
                metrics::counter!(m::COMMAND_RESPONSES, "status" => CommandStatus::from(r.status).as_str()).increment(1);
                batch.push((r, received));
            }
        }
        if !batch.is_empty() {
            apply_with_retry(&pool, reduce(batch), &shutdown).await;
        }
    }
}

/// Retries a batch while the database is unreachable, so a short outage loses
/// no response; gives up only at shutdown (the sweeper then times them out).
async fn apply_with_retry(
    pool: &PgPool,
    batch: HashMap<String, Reduced>,
    shutdown: &CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match apply(pool, &batch).await {
            Ok(finished) => {
                for status in finished {
                    metrics::counter!(m::COMMANDS_FINISHED, "status" => status).increment(1);
                }
                return;
            }
            Err(e) => {
                warn!(error = %e, responses = batch.len(), "Could not apply command responses; retrying.");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::payloads::ResponseStatus;

    fn resp(id: &str, status: ResponseStatus, code: Option<&str>) -> CommandResponse {
        CommandResponse {
            cmd_id: id.into(),
            status,
            ts: 0,
            details: None,
            error_code: code.map(Into::into),
            error_message: None,
            message: None,
        }
    }

    #[test]
    fn ack_and_done_in_one_batch() {
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::milliseconds(5);
        let r = reduce(vec![
            (resp("a", ResponseStatus::Ack, None), t0),
            (resp("a", ResponseStatus::Done, None), t1),
        ]);
        assert_eq!(r["a"].status, CommandStatus::Done);
        assert_eq!(r["a"].ack_at, Some(t0));
        assert_eq!(r["a"].finished_at, Some(t1));
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let t = Utc::now();
        let r = reduce(vec![
            (resp("a", ResponseStatus::Done, None), t),
            (resp("a", ResponseStatus::Ack, None), t),
            (resp("a", ResponseStatus::Done, None), t),
            (resp("a", ResponseStatus::Error, Some("late")), t),
        ]);
        assert_eq!(r["a"].status, CommandStatus::Done);
        assert_eq!(
            r["a"].error_code, None,
            "the first final response's details win"
        );
    }

    #[test]
    fn final_details_are_kept() {
        let r = reduce(vec![(
            resp("b", ResponseStatus::Invalid, Some("bad_signature")),
            Utc::now(),
        )]);
        assert_eq!(r["b"].status, CommandStatus::Invalid);
        assert_eq!(r["b"].error_code.as_deref(), Some("bad_signature"));
        assert_eq!(r["b"].ack_at, None);
    }
}
