//! Commands to nodes, as every sender shares them (mqtt-bridge's API,
//! automation-engine, scheduler). What happens after the send (responses,
//! timeouts) is mqtt-bridge's job; the rows are
//! [`crate::store::commands`]'.
//!
//! - [`target`]: the channel of a node a command addresses, and its lookups;
//! - [`route`]: the broker a command goes to, decided once per send, and
//!   the wait for a node in the middle of a move;
//! - [`send`]: the send path (row, signature, publish, SENT mark);
//! - [`status`]: the lifecycle's statuses; [`status_writer`]: their
//!   group-committed writes.

pub mod route;
pub mod send;
pub mod status;
pub mod status_writer;
pub mod target;

use std::sync::Arc;

pub use send::{CommandSender, NewCommand, SendOutcome, Source, new_cmd_id};
pub use target::{PickError, Target, ZoneChannels, find_in_zone, find_target};

use crate::mqtt::MqttError;
use crate::runtime::batcher::BatchError;

/// What can go wrong on the command path (sending, republishing, writing a
/// status). A broker that does not take a new command is not an error but
/// a [`SendOutcome::Failed`], recorded in its row.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// The database refused a statement or could not be reached. Shared:
    /// every command of a group-committed batch gets the batch's error.
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    /// The group-commit writer is gone (the process is shutting down).
    #[error("the command writer stopped")]
    WriterStopped,
    /// A republished command was taken by no broker.
    #[error("broker {broker_id}: {error}")]
    NotPublished { broker_id: String, error: MqttError },
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        CommandError::Database(Arc::new(e))
    }
}

impl From<BatchError<sqlx::Error>> for CommandError {
    fn from(e: BatchError<sqlx::Error>) -> Self {
        match e {
            BatchError::Failed(e) => CommandError::Database(e),
            BatchError::Stopped => CommandError::WriterStopped,
        }
    }
}
