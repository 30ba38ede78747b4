//! The send path every sender shares (mqtt-bridge's API, automation-engine,
//! scheduler): the row is written (QUEUED) before anything is published,
//! the command is signed with the node's secret and published with QoS 1 to
//! the broker [`crate::commands::route`] decides, and the row becomes SENT
//! once the broker acknowledged it — or SEND_FAILED when no broker took it.
//!
//! The row writes are group-committed (see [`crate::runtime::batcher`]):
//! concurrent sends share one INSERT, and the SENT marks go through the
//! process's one [`StatusWriter`]; each send still returns only after its
//! own row is committed.

use std::sync::Arc;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgPool;
use tracing::{instrument, warn};

use crate::commands::route::{broker_for, publish_following};
use crate::commands::status::CommandStatus;
use crate::commands::status_writer::{StatusUpdate, StatusWriter};
use crate::commands::{CommandError, Target};
use crate::metrics as m;
use crate::mqtt::MqttError;
use crate::mqtt::pool::BrokerPool;
use crate::runtime::batcher::Batcher;
use crate::store::commands::{self as rows, NewRow};
use proto::signing;

proto::text_enum! {
    /// Who sent a command (`commands.source`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Source {
        Api => "api",
        Automation => "automation",
        Scheduler => "scheduler",
    }
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

/// What the group-committed INSERT answers one row.
#[derive(Debug, Clone)]
enum Inserted {
    New,
    /// Its `cmd_id` exists already.
    Duplicate,
    /// The database refused this row (a value it cannot store).
    Refused(Arc<sqlx::Error>),
}

/// Inserts a batch of rows in one statement. If the database refuses it,
/// each row is tried on its own, so one bad row fails only its own request
/// (callers check their input first; this is the second line). A failure
/// to reach the database fails the whole batch.
async fn insert_batch(pool: PgPool, batch: Vec<NewRow>) -> Result<Vec<Inserted>, sqlx::Error> {
    let new = |is_new: bool| {
        if is_new {
            Inserted::New
        } else {
            Inserted::Duplicate
        }
    };
    match rows::insert(&pool, &batch).await {
        Ok(answers) => Ok(answers.into_iter().map(new).collect()),
        Err(e) if batch.len() > 1 && e.as_database_error().is_some() => {
            warn!(rows = batch.len(), error = %e, "A batch of commands was refused; inserting its rows one by one.");
            metrics::counter!(m::COMMAND_INSERT_BATCH_SPLITS).increment(1);
            let mut answers = Vec::with_capacity(batch.len());
            for row in batch.chunks(1) {
                answers.push(match rows::insert(&pool, row).await {
                    Ok(one) => new(one[0]),
                    Err(e) => Inserted::Refused(Arc::new(e)),
                });
            }
            Ok(answers)
        }
        Err(e) => Err(e),
    }
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
    inserts: Batcher<NewRow, Inserted, sqlx::Error>,
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
        let inserts = Batcher::spawn(WRITERS, MAX_BATCH, move |batch| {
            insert_batch(p.clone(), batch)
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
    ) -> Result<SendOutcome, CommandError> {
        let started = Instant::now();
        let broker_id = broker_for(target.broker_id.as_deref(), &self.brokers);
        let row = NewRow {
            cmd_id: command.cmd_id.clone(),
            zone_id: target.zone_id,
            node_id: target.node_id,
            channel: target.channel.clone(),
            cmd: command.cmd.clone(),
            params: Value::Object(command.params.clone()),
            source: command.source,
            broker_id: broker_id.clone(),
            request_hash: command.request_hash,
        };
        match self.inserts.call(row).await? {
            Inserted::New => {}
            Inserted::Duplicate => return Ok(SendOutcome::Duplicate),
            Inserted::Refused(e) => return Err(CommandError::Database(e)),
        }
        let stage = stage_timer("insert", started);
        metrics::counter!(m::COMMANDS_CREATED, "source" => command.source.as_str()).increment(1);

        let (broker_id, published) = self
            .sign_and_publish(
                target,
                &command.cmd_id,
                &command.cmd,
                command.params,
                broker_id,
            )
            .await?;
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
                let message = format!("broker {broker_id}: {error}");
                if rows::mark_send_failed(&self.pool, &command.cmd_id, &message).await? {
                    metrics::counter!(m::COMMANDS_FINISHED, "status" => "SEND_FAILED").increment(1);
                }
                Ok(SendOutcome::Failed { broker_id, error })
            }
        }
    }

    /// Publishes the command on `broker_id` following a move (see
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
        let (routed_to, published) = publish_following(
            &self.pool,
            &self.brokers,
            target.node_id,
            &target.command_topic(),
            payload,
            broker_id.clone(),
        )
        .await;
        if routed_to != broker_id {
            // The node moved while the command waited: the row names the
            // broker it went to.
            rows::set_broker(&self.pool, cmd_id, &routed_to).await?;
        }
        Ok((routed_to, published))
    }

    /// Publishes a command already SENT once more, on the node's broker now
    /// (signed anew with a fresh `ts`, same `cmd_id`: a node executes a
    /// `cmd_id` once and answers a repeat with its last response). For a
    /// command that went out on a broker that died before delivering it.
    /// Returns the broker it went to; [`CommandError::NotPublished`] when no
    /// broker took it.
    pub async fn republish(
        &self,
        target: &Target,
        cmd_id: &str,
        cmd: &str,
        params: Map<String, Value>,
    ) -> Result<String, CommandError> {
        let broker_id = broker_for(target.broker_id.as_deref(), &self.brokers);
        let (routed_to, published) = self
            .sign_and_publish(target, cmd_id, cmd, params, broker_id.clone())
            .await?;
        if let Err(error) = published {
            return Err(CommandError::NotPublished {
                broker_id: routed_to,
                error,
            });
        }
        if routed_to == broker_id {
            // The row names the broker it went out on this time (a move was
            // recorded by sign_and_publish already).
            rows::set_broker(&self.pool, cmd_id, &routed_to).await?;
        }
        Ok(routed_to)
    }
}
