//! The command send path every sender shares (mqtt-bridge's API,
//! automation-engine, scheduler): the row is written (QUEUED) before anything
//! is published, the command is signed with the node's secret and published
//! with QoS 1 to the node's broker, and the row becomes SENT once the broker
//! acknowledged it — or SEND_FAILED when no broker took it. What happens
//! after (responses, timeouts) is mqtt-bridge's job.

use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgPool;
use tracing::{instrument, warn};

use crate::brokers::BrokerPool;
use crate::metrics as m;
use crate::mqtt::MqttError;
use crate::signing;
use crate::topics::{TopicKind, channel_topic};

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
    /// The broker the node is assigned to, if any.
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
/// A node without a zone has no topic, so it is never a target.
pub const TARGET_QUERY: &str = "\
    SELECT n.id AS node_id, n.uid AS node_uid, z.id AS zone_id, z.uid AS zone_uid, \
           g.uid AS greenhouse_uid, c.channel, n.secret, a.broker_id \
    FROM nodes n \
    JOIN zones z ON z.id = n.zone_id \
    JOIN greenhouses g ON g.id = z.greenhouse_id \
    JOIN node_channels c ON c.node_id = n.id \
    LEFT JOIN node_broker_assignments a ON a.node_id = n.id ";

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

impl NewCommand {
    /// A command with a fresh random id.
    pub fn new(cmd: &str, params: Map<String, Value>, source: Source) -> Self {
        NewCommand {
            cmd_id: new_cmd_id(),
            cmd: cmd.to_owned(),
            params,
            source,
            request_hash: None,
        }
    }
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

/// Writes, signs, publishes and records commands.
#[derive(Clone)]
pub struct CommandSender {
    pool: PgPool,
    brokers: BrokerPool,
    default_secret: SecretString,
}

impl CommandSender {
    pub fn new(pool: PgPool, brokers: BrokerPool, default_secret: SecretString) -> Self {
        CommandSender {
            pool,
            brokers,
            default_secret,
        }
    }

    pub fn brokers(&self) -> &BrokerPool {
        &self.brokers
    }

    /// Sends one command. Database errors are returned; broker failures are
    /// an outcome, already recorded in the row.
    #[instrument(skip_all, fields(cmd_id = %command.cmd_id, node = %target.node_uid, channel = %target.channel), err)]
    pub async fn send(
        &self,
        target: &Target,
        command: NewCommand,
    ) -> Result<SendOutcome, sqlx::Error> {
        let started = Instant::now();
        let connection = self.brokers.route(target.broker_id.as_deref());
        let broker_id = match &connection {
            Ok(c) => c.broker_id().to_owned(),
            Err(_) => target.broker_id.clone().unwrap_or_default(),
        };
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO commands (cmd_id, zone_id, node_id, channel, cmd, params, source, broker_id, request_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (cmd_id) DO NOTHING RETURNING id",
        )
        .bind(&command.cmd_id)
        .bind(target.zone_id)
        .bind(target.node_id)
        .bind(&target.channel)
        .bind(&command.cmd)
        .bind(sqlx::types::Json(&command.params))
        .bind(command.source.as_str())
        .bind(&broker_id)
        .bind(&command.request_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(id) = inserted else {
            return Ok(SendOutcome::Duplicate);
        };
        metrics::counter!(m::COMMANDS_CREATED, "source" => command.source.as_str()).increment(1);

        let secret = target
            .secret
            .as_deref()
            .unwrap_or(self.default_secret.expose_secret());
        let ts = chrono::Utc::now().timestamp();
        let signed = signing::sign(
            secret.as_bytes(),
            &command.cmd_id,
            &command.cmd,
            command.params,
            ts,
        );
        let payload = serde_json::to_vec(&signed).expect("a command always serialises");
        let published = match connection {
            Ok(c) => c.publish(&target.command_topic(), payload, false).await,
            Err(e) => Err(e),
        };
        match published {
            Ok(()) => {
                metrics::histogram!(m::COMMAND_PUBLISH_DURATION)
                    .record(started.elapsed().as_secs_f64());
                // A fast node's response may already have moved the row past SENT.
                sqlx::query(
                    "UPDATE commands SET sent_at = COALESCE(sent_at, now()), \
                     status = CASE WHEN status = 'QUEUED' THEN 'SENT' ELSE status END \
                     WHERE id = $1",
                )
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(SendOutcome::Sent { broker_id })
            }
            Err(error) => {
                warn!(broker = %broker_id, %error, "Command publish failed; marking SEND_FAILED.");
                metrics::counter!(m::COMMAND_PUBLISH_ERRORS, "broker" => broker_id.clone(), "reason" => error.reason())
                    .increment(1);
                let updated = sqlx::query(
                    "UPDATE commands SET status = 'SEND_FAILED', finished_at = now(), \
                     error_code = 'send_failed', error_message = $2 \
                     WHERE id = $1 AND command_status_rank(status) < 3",
                )
                .bind(id)
                .bind(format!("broker {broker_id}: {error}"))
                .execute(&self.pool)
                .await?;
                if updated.rows_affected() == 1 {
                    metrics::counter!(m::COMMANDS_FINISHED, "status" => "SEND_FAILED").increment(1);
                }
                Ok(SendOutcome::Failed { broker_id, error })
            }
        }
    }
}
