//! The slower signs of a dead broker, besides probes and dropped
//! connections: its nodes falling silent, and commands on it going
//! unanswered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mqtt::Inbound;
use common::store::node_broker_assignments;
use proto::topics::{NodeTopic, TopicKind};
use sqlx::PgPool;
use tokio::time::Instant;

/// When each broker last carried uplink from a node; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Uplink {
    last: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Uplink {
    /// Notes a telemetry or heartbeat message; false when it is neither.
    pub fn on_message(&self, message: &Inbound) -> bool {
        let Ok(topic) = NodeTopic::parse(&message.topic) else {
            return false;
        };
        if !matches!(topic.kind, TopicKind::Telemetry | TopicKind::Heartbeat) {
            return false;
        }
        self.lock()
            .insert(message.broker_id.to_string(), Instant::now());
        true
    }

    /// Brokers that carried uplink before but none for `silence`, among `with_nodes`.
    pub fn silent(&self, with_nodes: &[String], silence: Duration) -> Vec<String> {
        let last = self.lock();
        with_nodes
            .iter()
            .filter(|b| last.get(*b).is_some_and(|at| at.elapsed() >= silence))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Brokers with confirmed nodes on them.
pub async fn brokers_with_nodes(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    node_broker_assignments::brokers_with_confirmed(pool).await
}

/// Brokers where at least 3 open commands of the last minute have waited
/// `after` or longer for any answer while no open command there was
/// acknowledged within `after` (one node that is merely slow or offline does
/// not make its broker suspect). Reads only open commands (a partial index).
pub async fn unanswered(pool: &PgPool, after: Duration) -> Result<Vec<String>, sqlx::Error> {
    common::store::commands::brokers_unanswered(pool, after).await
}
