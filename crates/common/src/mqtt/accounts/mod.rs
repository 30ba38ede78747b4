//! Node accounts on the brokers, through Mosquitto's dynamic-security plugin.
//!
//! Every bound node logs in with its own account: username = its uid,
//! password = `nodes.mqtt_password`, and one role `hydro-node-{uid}` whose
//! ACLs allow exactly that node's topics ([`node_acls`]). device-registry
//! keeps every broker in line with the database through [`sync_nodes`],
//! talking to the plugin's `$CONTROL/dynamic-security/v1` API over an
//! [`MqttConnection`] logged in as the dynsec admin (`MQTT_ADMIN_USER`).
//!
//! The plugin of Mosquitto 2.0 disconnects a client on every change to its
//! account (password, roles, text name) or to one of its roles' ACLs, even
//! when nothing really changed. So a sync must send nothing for an account
//! that is already right. The broker never shows a password, so each account
//! carries a fingerprint of what we set in its text name
//! (`hydro-node acl=… pw=…`, see [`fingerprint`]): an account whose
//! fingerprint, role and role list match is left alone.
//!
//! Commands go in batches, one publish each (kept under the brokers'
//! message size limit); the broker answers each batch with one message on
//! `$CONTROL/dynamic-security/v1/response`, sent to the asking client only,
//! with one result per command. The answers are matched to their batch by
//! the `correlationData` each command carries ([`Responses`]).

mod acl;
mod admin;
mod sync;

pub use acl::*;
pub use admin::*;
pub use sync::*;

use std::time::Duration;

use crate::mqtt::MqttError;

/// Where dynsec commands are published.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where the broker answers them (to the asking client only).
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// The role of node `uid` is `hydro-node-{uid}`.
pub const NODE_ROLE_PREFIX: &str = "hydro-node-";
/// The text name of every node account starts with this: it marks the
/// accounts a sync may delete (never a service's or the admin's).
pub const NODE_TEXTNAME_PREFIX: &str = "hydro-node ";
/// The time request and response topics (contract §2).
pub const TIME_REQUEST_TOPIC: &str = "hydro/time/request";
pub const TIME_RESPONSE_TOPIC: &str = "hydro/time/response";

/// How long a batch waits for the broker's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest batch payload: well under the brokers' message size limit
/// (`message_size_limit`, [`proto::payloads::MAX_PAYLOAD_BYTES`]).
const MAX_BATCH_BYTES: usize = 12 * 1024;
/// Accounts listed per `listClients` page: about 150 bytes each, so a page
/// stays far below the client's incoming packet limit.
const LIST_PAGE: usize = 500;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("publish to the broker failed: {0}")]
    Mqtt(#[from] MqttError),
    #[error("the broker did not answer the dynsec commands in time")]
    Timeout,
    #[error("the broker's dynsec answer is malformed: {0}")]
    BadResponse(String),
    #[error("dynsec `{command}` failed: {error}")]
    Command { command: String, error: String },
}

impl AccountsError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AccountsError::Mqtt(MqttError::NotConnected) => "not_connected",
            AccountsError::Mqtt(_) => "refused",
            AccountsError::Timeout => "timeout",
            AccountsError::BadResponse(_) => "bad_response",
            AccountsError::Command { .. } => "command",
        }
    }

    /// A create that found its account or role already there: another sync
    /// made it after this one listed the broker.
    fn already_exists(&self) -> bool {
        matches!(self, AccountsError::Command { command, error }
            if command.starts_with("create") && error.contains("already exists"))
    }
}
