//! The broker connections of a process, one per broker, and the connection a
//! command goes out on: its node's route (where the node is observed, else
//! its assignment — decided by [`crate::commands::route`]), else the default
//! broker (`MQTT_HOST`:`MQTT_PORT`, id `MQTT_BROKER_ID`).
//!
//! A pool made by `BrokerPool::connect_following` (in
//! [`crate::mqtt::watcher`]) follows the `brokers` table while it runs: a broker added or
//! enabled gets a connection, one removed or disabled loses it, one whose URL
//! changed is reconnected. Every filter given to [`BrokerPool::subscribe_all`]
//! is subscribed on a connection added later too, so a consumer of the uplink
//! picks up a new broker without doing anything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rumqttc::v5::mqttbytes::QoS;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use crate::settings::Settings;

/// Connections to every broker this process uses; cheap to clone.
#[derive(Clone)]
pub struct BrokerPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BrokerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPool")
            .field("default", &self.inner.default_id)
            .field("brokers", &self.ids())
            .finish()
    }
}

/// One live connection and what stops it.
pub(crate) struct Entry {
    url: String,
    connection: MqttConnection,
    stop: CancellationToken,
}

/// How to open a connection to a broker that appears later.
pub(crate) struct Factory {
    pub(crate) settings: Settings,
    pub(crate) client_prefix: String,
    pub(crate) inbox: Option<mpsc::Sender<Inbound>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) configure: Box<dyn Fn(&mut MqttConfig) + Send + Sync>,
}

struct Inner {
    default_id: String,
    connections: RwLock<BTreeMap<String, Entry>>,
    /// Every filter of [`BrokerPool::subscribe_all`], for connections added later.
    subscriptions: Mutex<Vec<(String, QoS)>>,
    factory: Option<Factory>,
    /// Bumped on every change of the set of connections.
    changed: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few map operations; a panic leaves them whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The brokers a process should be connected to: every enabled broker of the
/// table, plus the default broker of the settings when the table lacks it.
pub async fn desired_brokers(
    settings: &Settings,
    pool: &PgPool,
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows = crate::store::brokers::enabled(pool).await?;
    let mut brokers: BTreeMap<String, String> = rows.into_iter().map(|b| (b.id, b.url)).collect();
    brokers
        .entry(settings.mqtt_broker_id.clone())
        .or_insert_with(|| settings.default_broker_url());
    Ok(brokers)
}

impl BrokerPool {
    pub(crate) fn new(
        default_id: &str,
        connections: BTreeMap<String, Entry>,
        factory: Option<Factory>,
    ) -> Self {
        BrokerPool {
            inner: Arc::new(Inner {
                default_id: default_id.to_owned(),
                connections: RwLock::new(connections),
                subscriptions: Mutex::new(Vec::new()),
                factory,
                changed: watch::channel(0).0,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .connections
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .connections
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the connections in line with `desired` (id → URL): opens the
    /// missing ones, closes those no longer wanted (never the default broker)
    /// and reopens those whose URL changed. With `remove` false, only adds.
    /// Only a following pool can open connections; others are left alone.
    pub(crate) fn reconcile(
        &self,
        desired: BTreeMap<String, String>,
        remove: bool,
    ) -> Result<(), MqttError> {
        let Some(factory) = &self.inner.factory else {
            return Ok(());
        };
        // Subscriptions first, then connections: a concurrent subscribe_all
        // either sees the new connection or is seen by it.
        let subscriptions = lock(&self.inner.subscriptions);
        let mut closed = Vec::new();
        let mut changed = false;
        {
            let mut connections = self.write();
            let stale: Vec<String> = connections
                .iter()
                .filter(|(id, e)| match desired.get(*id) {
                    Some(url) => *url != e.url,
                    None => remove && **id != self.inner.default_id,
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                if let Some(entry) = connections.remove(&id) {
                    info!(broker = %id, url = %entry.url, "Broker left the registry or moved; disconnecting.");
                    closed.push(entry);
                    changed = true;
                }
            }
            for (id, url) in desired {
                if connections.contains_key(&id) {
                    continue;
                }
                let stop = factory.shutdown.child_token();
                let mut config = MqttConfig::new(&id, &url, &factory.client_prefix)
                    .with_settings(&factory.settings);
                (factory.configure)(&mut config);
                info!(broker = %id, url = %url, "Connecting to broker.");
                let connection =
                    MqttConnection::start(config, factory.inbox.clone(), stop.clone())?;
                for (filter, qos) in subscriptions.iter() {
                    connection.subscribe(filter, *qos)?;
                }
                connections.insert(
                    id,
                    Entry {
                        url,
                        connection,
                        stop,
                    },
                );
                changed = true;
            }
        }
        drop(subscriptions);
        for entry in closed {
            tokio::spawn(async move {
                entry.connection.disconnect().await;
                entry.stop.cancel();
            });
        }
        if changed {
            self.inner.changed.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    /// What the table asks of a following pool now (empty for another pool).
    pub(crate) async fn desired(
        &self,
        pool: &PgPool,
    ) -> Result<BTreeMap<String, String>, sqlx::Error> {
        match &self.inner.factory {
            Some(f) => desired_brokers(&f.settings, pool).await,
            None => Ok(BTreeMap::new()),
        }
    }

    /// The connection to `broker_id`, if this process has one.
    pub fn get(&self, broker_id: &str) -> Option<MqttConnection> {
        self.read().get(broker_id).map(|e| e.connection.clone())
    }

    pub fn default_broker(&self) -> MqttConnection {
        self.get(&self.inner.default_id)
            .expect("the default broker is never removed")
    }

    /// The connection a command for a node goes out on: its route broker
    /// (`Target::broker_id`, see [`crate::commands::route`]), or the default
    /// one when it has none. A route to a broker this process has no
    /// connection to is an error, not a silent detour.
    pub fn route(&self, routed: Option<&str>) -> Result<MqttConnection, MqttError> {
        match routed {
            None => Ok(self.default_broker()),
            Some(id) => self.get(id).ok_or_else(|| {
                warn!(
                    broker = id,
                    "Node is routed to a broker this process has no connection to."
                );
                MqttError::NotConnected
            }),
        }
    }

    /// Every connection, by broker id.
    pub fn all(&self) -> Vec<MqttConnection> {
        self.read().values().map(|e| e.connection.clone()).collect()
    }

    /// The broker ids this process is connected (or connecting) to.
    pub fn ids(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Changes whenever a connection is added or removed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Subscribes on every broker (and again after each reconnect), and on
    /// every broker this pool connects to later.
    pub fn subscribe_all(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        let mut subscriptions = lock(&self.inner.subscriptions);
        subscriptions.push((filter.to_owned(), qos));
        self.read()
            .values()
            .try_for_each(|e| e.connection.subscribe(filter, qos))
    }
}
