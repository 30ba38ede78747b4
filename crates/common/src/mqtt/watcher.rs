//! A [`BrokerPool`] that follows the `brokers` table (`BrokerPool::connect`,
//! `BrokerPool::connect_following`): LISTEN on the
//! `hydro_brokers` channel (a trigger of the schema announces every change
//! that matters to a connection), and compare the whole table with the pool
//! after each notification, after each reconnect of the listener (what
//! changed meanwhile was not announced to it) and every 30 s regardless.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::mqtt::pool::{BrokerPool, Factory, desired_brokers};
use crate::mqtt::{Inbound, MqttConfig};
use crate::runtime::backoff::Backoff;
use crate::settings::Settings;

/// The NOTIFY channel of the `brokers` table's triggers.
pub const CHANNEL: &str = "hydro_brokers";
/// A full comparison this often, whatever was announced.
const RESYNC_EVERY: Duration = Duration::from_secs(30);

impl BrokerPool {
    /// Connects to every enabled broker of the `brokers` table plus the
    /// default broker of the settings (which is all there is while the table
    /// is empty), and follows the table from then on (see
    /// [`BrokerPool::connect_following`]). Messages from all of them go to
    /// the one `inbox`.
    pub async fn connect(
        settings: &Settings,
        pool: &PgPool,
        client_prefix: &str,
        inbox: Option<mpsc::Sender<Inbound>>,
        shutdown: &CancellationToken,
    ) -> Result<Self, anyhow::Error> {
        Self::connect_following(settings, pool, client_prefix, inbox, shutdown, |_| {}).await
    }

    /// Connects like [`BrokerPool::connect`], with `configure` adjusting each
    /// broker's [`MqttConfig`] (manual acks, a persistent session, a stable
    /// client id) before its connection starts, and follows the `brokers`
    /// table until `shutdown`: brokers added, removed, enabled, disabled or
    /// moved to another URL are connected or disconnected within moments
    /// (LISTEN/NOTIFY on `hydro_brokers`, and a full comparison every 30 s
    /// in case a notification was missed). Filters subscribed with
    /// [`BrokerPool::subscribe_all`] are subscribed on new connections too.
    pub async fn connect_following(
        settings: &Settings,
        pool: &PgPool,
        client_prefix: &str,
        inbox: Option<mpsc::Sender<Inbound>>,
        shutdown: &CancellationToken,
        configure: impl Fn(&mut MqttConfig) + Send + Sync + 'static,
    ) -> Result<Self, anyhow::Error> {
        let (default_id, default_url) = (
            settings.mqtt.broker_id.clone(),
            settings.mqtt.default_broker_url(),
        );
        let factory = Factory {
            settings: settings.clone(),
            client_prefix: client_prefix.to_owned(),
            inbox,
            shutdown: shutdown.clone(),
            configure: Box::new(configure),
        };
        let brokers = Self::new(&default_id, BTreeMap::new(), Some(factory));
        // The default broker first: the pool is never without it.
        brokers.reconcile(BTreeMap::from([(default_id, default_url)]), false)?;
        let desired = desired_brokers(settings, pool).await?;
        brokers.reconcile(desired, true)?;
        tokio::spawn(follow(pool.clone(), brokers.clone(), shutdown.clone()));
        Ok(brokers)
    }
}

/// Runs until `shutdown`.
pub async fn follow(pool: PgPool, brokers: BrokerPool, shutdown: CancellationToken) {
    // Retry delays: 200 ms doubling to 5 s.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "Cannot listen for broker registry changes; retrying.");
                    if !backoff.pause(&shutdown).await {
                        return;
                    }
                    continue;
                }
            },
        };
        backoff.reset();
        resync(&pool, &brokers).await;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESYNC_EVERY) => Ok(None),
                n = listener.try_recv() => n.map(|n| n.map(|_| ())),
            };
            match next {
                Ok(_) => {
                    // A burst of changes is one comparison.
                    while listener.next_buffered().is_some() {}
                    resync(&pool, &brokers).await;
                }
                Err(e) => {
                    warn!(error = %e, "Lost the broker registry listener; reconnecting.");
                    break;
                }
            }
        }
    }
}

/// Compares the table with the pool and adjusts the pool.
async fn resync(pool: &PgPool, brokers: &BrokerPool) {
    match brokers.desired(pool).await {
        Ok(desired) => {
            debug!(brokers = ?desired.keys().collect::<Vec<_>>(), "Broker registry read.");
            if let Err(e) = brokers.reconcile(desired, true) {
                warn!(error = %e, "Could not connect a broker of the registry.");
            }
        }
        Err(e) => warn!(error = %e, "Could not read the broker registry; will retry."),
    }
}
