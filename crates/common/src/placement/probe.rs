//! The round-trip probe of a broker: publish a message on a private topic
//! and wait for it to come back through this process's own subscription.
//! It proves what a TCP check cannot: the broker accepts, routes and
//! delivers. broker-registry's health monitor and the failover detector
//! both probe this way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::mqtt::{Inbound, MqttConnection, MqttError};

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("publish failed: {0}")]
    Publish(MqttError),
    #[error("the probe did not come back in time")]
    NoEcho,
}

/// Probes for one process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Prober {
    prefix: Arc<str>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
}

impl Prober {
    /// Probe topics under `hydro-probe/{service}-{random}/`, private to this process.
    pub fn new(service: &str) -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        Prober {
            prefix: format!("hydro-probe/{service}-{id}").into(),
            waiting: Arc::default(),
        }
    }

    /// The filter to subscribe on every broker for the echoes.
    pub fn filter(&self) -> String {
        format!("{}/#", self.prefix)
    }

    /// Round trip through `connection`, within `timeout`: the latency.
    pub async fn probe(
        &self,
        connection: &MqttConnection,
        timeout: Duration,
    ) -> Result<Duration, ProbeError> {
        if !connection.is_connected() {
            return Err(ProbeError::NotConnected);
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("{}/{}/{token}", self.prefix, connection.broker_id());
        let (tx, rx) = oneshot::channel();
        self.lock().insert(topic.clone(), tx);
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, async {
            connection
                .publish(&topic, token.clone(), false)
                .await
                .map_err(ProbeError::Publish)?;
            rx.await.map_err(|_| ProbeError::NoEcho)
        })
        .await;
        self.lock().remove(&topic);
        match result {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ProbeError::NoEcho),
        }
    }

    /// Takes a probe echo; false when `message` is not one.
    pub fn on_message(&self, message: &Inbound) -> bool {
        if !message.topic.starts_with(&*self.prefix) {
            return false;
        }
        if let Some(tx) = self.lock().remove(&message.topic) {
            let _ = tx.send(());
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
