//! The broker connections of a process, one per broker, and the routing rule
//! for commands: the node's assigned broker when this process knows it, else
//! the default broker (`MQTT_HOST`:`MQTT_PORT`, id `MQTT_BROKER_ID`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rumqttc::v5::mqttbytes::QoS;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use crate::settings::Settings;

/// Connections to every broker this process uses; cheap to clone.
#[derive(Clone, Debug)]
pub struct BrokerPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    default_id: String,
    connections: BTreeMap<String, MqttConnection>,
}

impl BrokerPool {
    /// Connects to every enabled broker of the `brokers` table plus the
    /// default broker of the settings (which is all there is while the table
    /// is empty). Messages from all of them go to the one `inbox`.
    pub async fn connect(
        settings: &Settings,
        pool: &PgPool,
        client_prefix: &str,
        inbox: Option<mpsc::Sender<Inbound>>,
        shutdown: &CancellationToken,
    ) -> Result<Self, anyhow::Error> {
        Self::connect_with(settings, pool, client_prefix, inbox, shutdown, |_| {}).await
    }

    /// Like [`BrokerPool::connect`], with `configure` adjusting each broker's
    /// [`MqttConfig`] (manual acks, a persistent session, a stable client id)
    /// before its connection starts.
    pub async fn connect_with(
        settings: &Settings,
        pool: &PgPool,
        client_prefix: &str,
        inbox: Option<mpsc::Sender<Inbound>>,
        shutdown: &CancellationToken,
        configure: impl Fn(&mut MqttConfig),
    ) -> Result<Self, anyhow::Error> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, url FROM brokers WHERE enabled ORDER BY id")
                .fetch_all(pool)
                .await?;
        let mut configs: BTreeMap<String, String> = rows.into_iter().collect();
        configs
            .entry(settings.mqtt_broker_id.clone())
            .or_insert_with(|| settings.default_broker_url());
        let mut connections = BTreeMap::new();
        for (id, url) in configs {
            let mut config = MqttConfig::new(&id, &url, client_prefix).with_settings(settings);
            configure(&mut config);
            info!(broker = %id, url = %url, "Connecting to broker.");
            connections.insert(
                id,
                MqttConnection::start(config, inbox.clone(), shutdown.clone())?,
            );
        }
        Ok(Self::from_connections(
            &settings.mqtt_broker_id,
            connections,
        ))
    }

    /// A pool over connections made elsewhere; `default_id` must be one of them.
    pub fn from_connections(
        default_id: &str,
        connections: BTreeMap<String, MqttConnection>,
    ) -> Self {
        assert!(
            connections.contains_key(default_id),
            "the default broker `{default_id}` has no connection"
        );
        BrokerPool {
            inner: Arc::new(Inner {
                default_id: default_id.to_owned(),
                connections,
            }),
        }
    }

    pub fn get(&self, broker_id: &str) -> Option<&MqttConnection> {
        self.inner.connections.get(broker_id)
    }

    pub fn default_broker(&self) -> &MqttConnection {
        &self.inner.connections[&self.inner.default_id]
    }

    /// The connection a command for a node goes out on: its assigned broker,
    /// or the default one when it has no assignment. An assignment to a broker
    /// this process has no connection to is an error, not a silent detour.
    pub fn route(&self, assigned: Option<&str>) -> Result<&MqttConnection, MqttError> {
        match assigned {
            None => Ok(self.default_broker()),
            Some(id) => self.get(id).ok_or_else(|| {
                warn!(
                    broker = id,
                    "Node is assigned to a broker this process has no connection to."
                );
                MqttError::NotConnected
            }),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &MqttConnection> {
        self.inner.connections.values()
    }

    /// Subscribes on every broker (and again after each reconnect).
    pub fn subscribe_all(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        self.all().try_for_each(|c| c.subscribe(filter, qos))
    }
}
