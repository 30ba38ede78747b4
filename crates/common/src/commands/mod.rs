//! The command send path every sender shares (mqtt-bridge's API,
//! automation-engine, scheduler): the row is written (QUEUED) before anything
//! is published, the command is signed with the node's secret and published
//! with QoS 1 to the node's broker, and the row becomes SENT once the broker
//! acknowledged it — or SEND_FAILED when no broker took it. What happens
//! after (responses, timeouts) is mqtt-bridge's job.
//!
//! A command to a node in the middle of a move waits for the move and goes
//! out on the node's new broker (see [`crate::commands::route`]).
//!
//! The row writes are group-committed (see [`crate::runtime::batcher`]): concurrent
//! sends share one INSERT, and the SENT marks go through the process's one
//! [`StatusWriter`]; each send still returns only after its own row is
//! committed.
//!
//! Beside it: [`route`] (the broker a command goes to), [`status`] (the
//! lifecycle's statuses), [`status_writer`] (their group-committed writes).

pub mod route;
pub mod status;
pub mod status_writer;

use std::collections::HashSet;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgPool;
use tracing::{instrument, warn};

use crate::commands::status::CommandStatus;
use crate::commands::status_writer::{StatusUpdate, StatusWriter};
use crate::metrics as m;
use crate::mqtt::MqttError;
use crate::mqtt::pool::BrokerPool;
use crate::runtime::batcher::{BatchError, Batcher};
use proto::signing;
use proto::topics::{TopicKind, channel_topic};

/// Who sent a command (`commands.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Api,
    Automation,
    Scheduler,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Automation => "automation",
            Source::Scheduler => "scheduler",
        }
    }
}

/// Everything needed to address one channel of one node.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Target {
    pub node_id: i64,
    pub node_uid: String,
    pub zone_id: i64,
    pub zone_uid: String,
    pub greenhouse_uid: String,
    pub channel: String,
    /// The node's own HMAC key, if it has one.
    pub secret: Option<String>,
    /// The broker commands to the node go to (see
    /// [`crate::commands::route`]: where it is observed, else its assignment);
    /// `None`: the default broker.
    pub broker_id: Option<String>,
}

impl Target {
    pub fn command_topic(&self) -> String {
        channel_topic(
            &self.greenhouse_uid,
            &self.zone_uid,
            &self.node_uid,
            &self.channel,
            TopicKind::Command,
        )
    }
}

/// The select list and joins that build a [`Target`]; callers add `WHERE`.
/// A node without a zone has no topic, so it is never a target. Its broker
/// is the route of [`crate::route_broker_sql!`], decided here once.
pub const TARGET_QUERY: &str = concat!(
    "SELECT n.id AS node_id, n.uid AS node_uid, z.id AS zone_id, z.uid AS zone_uid, \
            g.uid AS greenhouse_uid, c.channel, n.secret, ",
    crate::route_broker_sql!(),
    " AS broker_id \
    FROM nodes n \
    JOIN zones z ON z.id = n.zone_id \
    JOIN greenhouses g ON g.id = z.greenhouse_id \
    JOIN node_channels c ON c.node_id = n.id \
    LEFT JOIN node_broker_assignments a ON a.node_id = n.id "
);

/// The target for `channel` of the node `node_uid`, if both exist.
pub async fn find_target(
    pool: &PgPool,
    node_uid: &str,
    channel: &str,
) -> Result<Option<Target>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{TARGET_QUERY} WHERE n.uid = $1 AND c.channel = $2"
    ))
    .bind(node_uid)
    .bind(channel)
    .fetch_optional(pool)
    .await
}

/// A command to send.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub cmd_id: String,
    pub cmd: String,
    pub params: Map<String, Value>,
    pub source: Source,
    /// Fingerprint of the request, stored for idempotent retries.
    pub request_hash: Option<String>,
}

/// A fresh command id: 32 hex characters.
pub fn new_cmd_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The broker acknowledged the publish; the row is SENT (or further).
    Sent { broker_id: String },
    /// A command with this `cmd_id` already exists; nothing was published.
    Duplicate,
    /// No broker took it; the row is SEND_FAILED.
    Failed { broker_id: String, error: MqttError },
}

/// A row to insert: the command and where it goes.
struct Insert {
    zone_id: i64,
    node_id: i64,
    channel: String,
    broker_id: String,
    cmd_id: String,
    cmd: String,
    params: Value,
    source: Source,
    request_hash: Option<String>,
}

/// Inserts a batch of QUEUED rows; answers whether each row was new:
/// `false` where the `cmd_id` exists already (also within the batch). One
/// statement for all; if the database refuses it (a value it cannot store),
/// each row is tried on its own, so one bad row fails only its own request
/// (callers check their input first; this is the second line). A failure
/// to reach the database fails the whole batch.
async fn insert_batch(
    pool: PgPool,
    rows: Vec<Insert>,
) -> Result<Vec<Result<bool, BatchError>>, sqlx::Error> {
    match insert_rows(&pool, &rows).await {
        Ok(new) => Ok(new.into_iter().map(Ok).collect()),
        Err(e) if rows.len() > 1 && e.as_database_error().is_some() => {
            warn!(rows = rows.len(), error = %e, "A batch of commands was refused; inserting its rows one by one.");
            metrics::counter!(m::COMMAND_INSERT_BATCH_SPLITS).increment(1);
            let mut answers = Vec::with_capacity(rows.len());
            for row in rows.chunks(1) {
                answers.push(
                    insert_rows(&pool, row)
                        .await
                        .map(|new| new[0])
                        .map_err(|e| -> BatchError { std::sync::Arc::new(e) }),
                );
            }
            Ok(answers)
        }
        Err(e) => Err(e),
    }
}

/// One INSERT of `rows` (see [`insert_batch`]).
async fn insert_rows(pool: &PgPool, rows: &[Insert]) -> Result<Vec<bool>, sqlx::Error> {
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
    .fetch_all(pool)
    .await?;
    let mut new: HashSet<String> = inserted.into_iter().collect();
    // The first request of a cmd_id gets the row; any later one is a duplicate.
    Ok(rows.iter().map(|r| new.remove(&r.cmd_id)).collect())
}

/// Records the time since `since` as `stage`; returns now.
fn stage_timer(stage: &'static str, since: Instant) -> Instant {
    let now = Instant::now();
    metrics::histogram!(m::COMMAND_STAGE_DURATION, "stage" => stage)
        .record((now - since).as_secs_f64());
    now
}

/// Rows per group-committed statement, and statements in flight at once.
const MAX_BATCH: usize = 256;
const WRITERS: usize = 2;

/// Writes, signs, publishes and records commands.
#[derive(Clone)]
pub struct CommandSender {
    pool: PgPool,
    brokers: BrokerPool,
    default_secret: SecretString,
    inserts: Batcher<Insert, Result<bool, BatchError>>,
    status: StatusWriter,
}

impl CommandSender {
    /// [`CommandSender::new`] with a status writer of its own: for a
    /// process that sends commands but does not apply the nodes' responses
    /// (automation-engine, scheduler).
    pub fn with_status_writer(
        pool: PgPool,
        brokers: BrokerPool,
        default_secret: SecretString,
    ) -> Self {
        let status = StatusWriter::spawn(pool.clone());
        CommandSender::new(pool, brokers, default_secret, status)
    }

    /// Starts the group-commit writer for new rows; call inside the
    /// runtime. SENT marks go through `status`, the process's one writer of
    /// command statuses.
    pub fn new(
        pool: PgPool,
        brokers: BrokerPool,
        default_secret: SecretString,
        status: StatusWriter,
    ) -> Self {
        let p = pool.clone();
        let inserts = Batcher::spawn(WRITERS, MAX_BATCH, move |rows| {
            insert_batch(p.clone(), rows)
        });
        CommandSender {
            pool,
            brokers,
            default_secret,
            inserts,
            status,
        }
    }

    /// Sends one command. Database errors are returned; broker failures are
    /// an outcome, already recorded in the row.
    #[instrument(skip_all, fields(cmd_id = %command.cmd_id, node = %target.node_uid, channel = %target.channel), err)]
    pub async fn send(
        &self,
        target: &Target,
        command: NewCommand,
    ) -> Result<SendOutcome, BatchError> {
        let started = Instant::now();
        let connection = self.brokers.route(target.broker_id.as_deref());
        let broker_id = match &connection {
            Ok(c) => c.broker_id().to_owned(),
            Err(_) => target.broker_id.clone().unwrap_or_default(),
        };
        let insert = Insert {
            zone_id: target.zone_id,
            node_id: target.node_id,
            channel: target.channel.clone(),
            broker_id: broker_id.clone(),
            cmd_id: command.cmd_id.clone(),
            cmd: command.cmd.clone(),
            params: Value::Object(command.params.clone()),
            source: command.source,
            request_hash: command.request_hash,
        };
        let inserted = self.inserts.call(insert).await??;
        let stage = stage_timer("insert", started);
        if !inserted {
            return Ok(SendOutcome::Duplicate);
        }
        metrics::counter!(m::COMMANDS_CREATED, "source" => command.source.as_str()).increment(1);

        let (broker_id, published) = self
            .sign_and_publish(
                target,
                &command.cmd_id,
                &command.cmd,
                command.params,
                connection,
                broker_id,
            )
            .await
            .map_err(|e| -> BatchError { std::sync::Arc::new(e) })?;
        let stage = stage_timer("publish", stage);
        match published {
            Ok(()) => {
                let sent =
                    StatusUpdate::new(&command.cmd_id, CommandStatus::Sent, chrono::Utc::now());
                self.status.write(sent).await?;
                stage_timer("mark_sent", stage);
                Ok(SendOutcome::Sent { broker_id })
            }
            Err(error) => {
                warn!(broker = %broker_id, %error, "Command publish failed; marking SEND_FAILED.");
                metrics::counter!(m::COMMAND_PUBLISH_ERRORS, "broker" => broker_id.clone(), "reason" => error.reason())
                    .increment(1);
                let updated = sqlx::query(
                    "UPDATE commands SET status = 'SEND_FAILED', finished_at = now(), \
                     error_code = 'send_failed', error_message = $2 \
                     WHERE cmd_id = $1 AND finished_at IS NULL",
                )
                .bind(&command.cmd_id)
                .bind(format!("broker {broker_id}: {error}"))
                .execute(&self.pool)
                .await
                .map_err(|e| -> BatchError { std::sync::Arc::new(e) })?;
                if updated.rows_affected() == 1 {
                    metrics::counter!(m::COMMANDS_FINISHED, "status" => "SEND_FAILED").increment(1);
                }
                Ok(SendOutcome::Failed { broker_id, error })
            }
        }
    }

    /// Publishes the command on its broker following a move (see
    /// [`crate::commands::route`]), signed with the node's secret at each
    /// attempt (`ts` = the moment of that publish) and, if it went to
    /// another broker than `broker_id`, records that broker in the row.
    /// Returns the broker it went to and the publish outcome.
    async fn sign_and_publish(
        &self,
        target: &Target,
        cmd_id: &str,
        cmd: &str,
        params: Map<String, Value>,
        connection: Result<crate::mqtt::MqttConnection, MqttError>,
        broker_id: String,
    ) -> Result<(String, Result<(), MqttError>), sqlx::Error> {
        let secret = target
            .secret
            .as_deref()
            .unwrap_or(self.default_secret.expose_secret());
        let payload = || {
            let ts = chrono::Utc::now().timestamp();
            let signed = signing::sign(secret.as_bytes(), cmd_id, cmd, params.clone(), ts);
            bytes::Bytes::from(serde_json::to_vec(&signed).expect("a command always serialises"))
        };
        let (routed_to, published) = crate::commands::route::publish_following(
            &self.pool,
            &self.brokers,
            target.node_id,
            &target.command_topic(),
            payload,
            connection,
            broker_id.clone(),
        )
        .await;
        if routed_to != broker_id {
            // The node moved while the command waited: the row names the
            // broker it went to.
            sqlx::query("UPDATE commands SET broker_id = $2 WHERE cmd_id = $1")
                .bind(cmd_id)
                .bind(&routed_to)
                .execute(&self.pool)
                .await?;
        }
        Ok((routed_to, published))
    }

    /// Publishes a command already SENT once more, on the node's broker now
    /// (signed anew with a fresh `ts`, same `cmd_id`: a node executes a `cmd_id` once and
    /// answers a repeat with its last response). For a command that went
    /// out on a broker that died before delivering it. Returns the broker it
    /// went to.
    pub async fn republish(
        &self,
        target: &Target,
        cmd_id: &str,
        cmd: &str,
        params: Map<String, Value>,
    ) -> Result<Result<String, MqttError>, sqlx::Error> {
        let connection = self.brokers.route(target.broker_id.as_deref());
        let broker_id = target
            .broker_id
            .clone()
            .unwrap_or_else(|| self.brokers.default_broker().broker_id().to_owned());
        let (routed_to, published) = self
            .sign_and_publish(target, cmd_id, cmd, params, connection, broker_id.clone())
            .await?;
        if published.is_ok() {
            // The row names the broker it went out on this time.
            sqlx::query("UPDATE commands SET broker_id = $2 WHERE cmd_id = $1")
                .bind(cmd_id)
                .bind(&routed_to)
                .execute(&self.pool)
                .await?;
        }
        Ok(published.map(|()| routed_to))
    }
}
