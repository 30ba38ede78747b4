//! Consumes `command_response` messages from every broker and hands them to
//! the status writer (`common::commands::status_writer`), for every command whoever
//! sent it.
//!
//! A response counts only from where its command was sent: the topic's
//! greenhouse, zone, node and channel must be the command row's
//! ([`check_origin`]). Anything else — an unknown `cmd_id`, another node's
//! topic, another channel — is dropped without touching any command, counted
//! in `bridge_responses_dropped_total{reason}` and logged (at most once per
//! [`DROP_LOG_EVERY`]), so a forged answer cannot end a command and the
//! node's real one still counts.
//!
//! Everything waiting in the inbox is submitted at once, so under load the
//! writer folds hundreds of responses into one statement (after one lookup
//! of their commands). A status only moves forward, so order does not matter
//! and a duplicate changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::commands::status::CommandStatus;
use common::commands::status_writer::{StatusUpdate, StatusWriter};
use common::metrics as m;
use common::mqtt::Inbound;
use common::runtime::backoff::Backoff;
use common::store::commands::{self, Origin};
use proto::payloads::CommandResponse;
use proto::topics::{NodeTopic, TopicKind};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Retry delays while PostgreSQL is unreachable: 100 ms doubling to 5 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// The most responses taken from the inbox at once.
pub const MAX_TAKE: usize = 4096;
/// A dropped response is logged at most this often (a flood of forged ones
/// is counted in full).
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// A valid response and the topic it came on.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub topic: NodeTopic,
    pub update: StatusUpdate,
}

/// Turns one message into a response; `None` (counted, logged at debug)
/// when it is not a valid one.
pub fn decode(message: &Inbound) -> Option<Response> {
    let reason = match NodeTopic::parse(&message.topic) {
        Ok(topic) if topic.kind == TopicKind::CommandResponse => {
            match CommandResponse::decode(&message.payload) {
                Ok(r) => {
                    return Some(Response {
                        topic,
                        update: StatusUpdate {
                            cmd_id: r.cmd_id,
                            status: CommandStatus::from(r.status),
                            at: Utc::now(),
                            error_code: r.error_code,
                            error_message: r.error_message.or(r.message),
                            result: r.details.map(Value::Object),
                        },
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
    metrics::counter!(m::BRIDGE_RESPONSES_DROPPED, "reason" => reason).increment(1);
    None
}

/// Whether a response on `topic` may answer the command sent to `origin`;
/// the error is the reason to drop it.
pub fn check_origin(topic: &NodeTopic, origin: Option<&Origin>) -> Result<(), &'static str> {
    let Some(origin) = origin else {
        return Err("unknown_command");
    };
    if origin.node_uid.as_deref() != Some(topic.node.as_str()) {
        return Err("wrong_node");
    }
    if topic.channel.as_deref() != Some(origin.channel.as_str()) {
        return Err("wrong_channel");
    }
    if origin.zone_uid.as_deref() != Some(topic.zone.as_str())
        || origin.greenhouse_uid.as_deref() != Some(topic.greenhouse.as_str())
    {
        return Err("wrong_zone");
    }
    Ok(())
}

/// Where each of `cmd_ids` was sent (commands that do not exist are absent).
pub async fn origins(
    pool: &PgPool,
    cmd_ids: &[&str],
) -> Result<HashMap<String, Origin>, sqlx::Error> {
    let rows = commands::origins(pool, cmd_ids).await?;
    Ok(rows.into_iter().map(|o| (o.cmd_id.clone(), o)).collect())
}

/// Keeps the responses that come from where their command was sent; counts
/// and logs the others.
fn keep_matching(
    responses: Vec<Response>,
    origins: &HashMap<String, Origin>,
    logged: &Mutex<Option<Instant>>,
) -> Vec<StatusUpdate> {
    let mut kept = Vec::with_capacity(responses.len());
    for r in responses {
        let origin = origins.get(&r.update.cmd_id);
        match check_origin(&r.topic, origin) {
            Ok(()) => {
                metrics::counter!(m::COMMAND_RESPONSES, "status" => r.update.status.as_str())
                    .increment(1);
                kept.push(r.update);
            }
            Err(reason) => {
                metrics::counter!(m::BRIDGE_RESPONSES_DROPPED, "reason" => reason).increment(1);
                let mut last = logged.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|at| at.elapsed() >= DROP_LOG_EVERY) {
                    *last = Some(Instant::now());
                    warn!(
                        reason,
                        cmd_id = %r.update.cmd_id,
                        node = %r.topic.node,
                        channel = ?r.topic.channel,
                        "Command response dropped: not from where the command was sent."
                    );
                }
            }
        }
    }
    kept
}

/// Consumes responses until `shutdown`.
pub async fn run(
    pool: PgPool,
    writer: StatusWriter,
    mut inbox: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) {
    let logged = Mutex::new(None);
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
        let responses: Vec<Response> = taken.drain(..).filter_map(|m| decode(&m)).collect();
        if responses.is_empty() {
            continue;
        }
        let Some(origins) = lookup_with_retry(&pool, &responses, &shutdown).await else {
            return;
        };
        let updates = keep_matching(responses, &origins, &logged);
        write_with_retry(&writer, updates, &shutdown).await;
    }
}

/// [`origins`] of the responses' commands, retried while the database is
/// unreachable; `None` only at shutdown.
async fn lookup_with_retry(
    pool: &PgPool,
    responses: &[Response],
    shutdown: &CancellationToken,
) -> Option<HashMap<String, Origin>> {
    let ids: Vec<&str> = responses.iter().map(|r| r.update.cmd_id.as_str()).collect();
    let mut backoff = RETRY;
    loop {
        match origins(pool, &ids).await {
            Ok(o) => return Some(o),
            Err(e) => {
                warn!(error = %e, responses = ids.len(), "Could not look up the commands of responses; retrying.");
                if !backoff.pause(shutdown).await {
                    return None;
                }
            }
        }
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
    let mut backoff = RETRY;
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
            if !backoff.pause(shutdown).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(gh: &str, zone: &str, node: &str, channel: &str) -> NodeTopic {
        NodeTopic::parse(&format!(
            "hydro/{gh}/{zone}/{node}/{channel}/command_response"
        ))
        .unwrap()
    }

    fn origin() -> Origin {
        Origin {
            cmd_id: "c1".into(),
            node_uid: Some("nd-1".into()),
            channel: "pump_acid".into(),
            zone_uid: Some("zn-a".into()),
            greenhouse_uid: Some("gh-1".into()),
        }
    }

    #[test]
    fn a_response_counts_only_from_the_node_and_channel_the_command_went_to() {
        let o = origin();
        // (greenhouse, zone, node, channel the response came on; its verdict)
        let cases = [
            (("gh-1", "zn-a", "nd-1", "pump_acid"), Ok(())),
            (("gh-1", "zn-a", "nd-2", "pump_acid"), Err("wrong_node")),
            (("gh-1", "zn-a", "nd-1", "pump_base"), Err("wrong_channel")),
            (("gh-1", "zn-b", "nd-1", "pump_acid"), Err("wrong_zone")),
            (("gh-2", "zn-a", "nd-1", "pump_acid"), Err("wrong_zone")),
        ];
        for ((gh, zone, node, channel), want) in cases {
            let on = topic(gh, zone, node, channel);
            assert_eq!(
                check_origin(&on, Some(&o)),
                want,
                "{gh}/{zone}/{node}/{channel}"
            );
        }
        assert_eq!(
            check_origin(&topic("gh-1", "zn-a", "nd-1", "pump_acid"), None),
            Err("unknown_command")
        );
        // A command whose node was deleted has no origin to answer from.
        let gone = Origin {
            node_uid: None,
            ..origin()
        };
        assert_eq!(
            check_origin(&topic("gh-1", "zn-a", "nd-1", "pump_acid"), Some(&gone)),
            Err("wrong_node")
        );
    }
}
