//! Consumes `command_response` messages from every broker and hands them to
//! the status writer (`common::status_writer`), for every command whoever
//! sent it.
//!
//! Everything waiting in the inbox is submitted at once, so under load the
//! writer folds hundreds of responses into one statement. A status only moves
//! forward, so order does not matter and a duplicate changes nothing.

use std::time::Duration;

use chrono::Utc;
use common::command_status::CommandStatus;
use common::metrics as m;
use common::mqtt::Inbound;
use common::payloads::CommandResponse;
use common::status_writer::{StatusUpdate, StatusWriter};
use common::topics::{NodeTopic, TopicKind};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The most responses taken from the inbox at once.
pub const MAX_TAKE: usize = 4096;

/// Turns one message into a status update; `None` (counted, logged at debug)
/// when it is not a valid response.
pub fn decode(message: &Inbound) -> Option<StatusUpdate> {
    let reason = match NodeTopic::parse(&message.topic) {
        Ok(t) if t.kind == TopicKind::CommandResponse => {
            match CommandResponse::decode(&message.payload) {
                Ok(r) => {
                    let status = CommandStatus::from(r.status);
                    metrics::counter!(m::COMMAND_RESPONSES, "status" => status.as_str())
                        .increment(1);
                    return Some(StatusUpdate {
                        cmd_id: r.cmd_id,
                        status,
                        at: Utc::now(),
                        error_code: r.error_code,
                        error_message: r.error_message.or(r.message),
                        result: r.details.map(Value::Object),
                    });
                }
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

/// Consumes responses until `shutdown`.
pub async fn run(
    writer: StatusWriter,
    mut inbox: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) {
    let mut taken = Vec::with_capacity(MAX_TAKE);
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => None,
            m = inbox.recv() => m,
        };
        let Some(first) = first else { break };
        taken.push(first);
        while taken.len() < MAX_TAKE {
            match inbox.try_recv() {
                Ok(m) => taken.push(m),
                Err(_) => break,
            }
        }
        let updates: Vec<StatusUpdate> = taken.drain(..).filter_map(|m| decode(&m)).collect();
        write_with_retry(&writer, updates, &shutdown).await;
    }
}

/// Writes a set of updates, retrying the failed ones while the database is
/// unreachable, so a short outage loses no response; gives up only at
/// shutdown (the sweeper then times those commands out).
async fn write_with_retry(
    writer: &StatusWriter,
    mut updates: Vec<StatusUpdate>,
    shutdown: &CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    while !updates.is_empty() {
        let results =
            futures::future::join_all(updates.iter().cloned().map(|u| writer.write(u))).await;
        let mut failed = Vec::new();
        let mut error = None;
        for (u, r) in updates.into_iter().zip(results) {
            if let Err(e) = r {
                failed.push(u);
                error = Some(e);
            }
        }
        updates = failed;
        if let Some(e) = error {
            warn!(error = %e, responses = updates.len(), "Could not apply command responses; retrying.");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
