//! A node's link to its broker, as the hydro2.0 firmware keeps it (seed
//! MQTT_LOAD_BALANCING.md, sections 5, 8 and 11):
//!
//! - a **stored broker** with a **fallback list** (NVS on real hardware),
//!   first from `SIM_BROKER_URLS`, then from each `config/update`;
//! - a `nodes/{node}/config/update` must be signed with the node's secret
//!   (as its commands are) and, delivered live, carry a `ts` within the
//!   commands' window of the node's clock; a retained copy the broker replays
//!   on subscribe may be older (it is the broker's last word on where the node
//!   belongs), never from the future. Anything else is refused
//!   ([`check_move`]), counted in `sim_moves_refused_total{reason}` and not
//!   applied;
//! - on a move newer than the stored one (its `ts`
//!   is strictly higher: a stale retained copy left on some broker is
//!   ignored) the node stores it and switches: it connects to the new
//!   broker, and only once that one answers (or after a few seconds) leaves
//!   the old one with a DISCONNECT, so nothing in flight is lost; a config
//!   naming the broker it is already on is answered with its status again;
//! - when its broker stops answering for `SIM_FALLBACK_AFTER_MS`, it tries the
//!   fallback list in order (and round again), and on each broker it reaches
//!   reads its retained config/update, which names its final broker;
//! - on every connect it publishes its status ONLINE there (that is what
//!   confirms a move) and sends what it buffered;
//! - while cut off, telemetry goes to an **offline buffer** of at most
//!   [`BUFFER_PACKETS`] packets (the oldest is dropped beyond that), sent
//!   after reconnecting with the readings' original timestamps. A broker that
//!   dies can lose messages it had acknowledged but not yet delivered, so
//!   when the connection drops (not when the node leaves on its own) the
//!   readings acknowledged in the last [`REPLAY_WINDOW`] go back into the
//!   buffer too: the store's key makes a repeat a no-op, a loss would be final.
//!
//! This file holds the link's state, its handle and the connection it
//! makes; the offline buffer is in [`buffer`], moves (config/update) in
//! [`moves`], following the connection and the fallback list in [`fallback`].

mod buffer;
mod fallback;
mod moves;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use proto::payloads::{NodeState, Status};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::metrics as m;

pub use moves::check_move;

/// Telemetry packets a node keeps while cut off (the firmware's offline queue).
pub const BUFFER_PACKETS: usize = 50;
/// Readings acknowledged this shortly before the connection dropped are sent
/// again after the reconnect (see the module doc).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(2);
/// The longest a switch waits for the new broker before leaving the old one.
const SWITCH_WAIT: Duration = Duration::from_secs(5);
/// The longest the old connection may take to finish its publishes.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// A node logs a refused move at most this often (a flood of forged moves
/// is counted in full, not logged in full).
const REFUSAL_LOG_EVERY_SECS: i64 = 10;

/// What does not change between connections.
pub struct LinkConfig {
    /// Client id, credentials, keep-alive, last will, in-flight limit; the
    /// URL is replaced per connection.
    pub template: MqttConfig,
    /// The node's command filter.
    pub commands_filter: String,
    /// `nodes/{node}/config/update`.
    pub config_topic: String,
    /// `hydro/{gh}/{zone}/{node}/status`.
    pub status_topic: String,
    /// How long the node keeps trying its broker before the fallbacks.
    pub fallback_after: Duration,
    /// The key a move must be signed with: the node's secret, the one its
    /// commands are checked against.
    pub secret: Vec<u8>,
}

/// A reading waiting to be sent.
#[derive(Debug, Clone)]
struct Packet {
    topic: String,
    payload: Bytes,
}

/// What the node keeps in NVS.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    url: String,
    fallback: Vec<String>,
    /// The `ts` of the config/update it came from; 0 before any.
    ts: i64,
}

impl Stored {
    /// The stored broker, then the fallbacks, without repeats.
    fn candidates(&self) -> Vec<String> {
        let mut all = vec![self.url.clone()];
        for f in &self.fallback {
            if !all.contains(f) {
                all.push(f.clone());
            }
        }
        all
    }
}

struct Current {
    url: String,
    connection: MqttConnection,
    stop: CancellationToken,
}

struct State {
    stored: Stored,
    current: Current,
}

#[derive(Default)]
struct Buffers {
    /// Waiting to be sent, oldest first.
    offline: VecDeque<Packet>,
    /// Acknowledged within the replay window, oldest first.
    recent: VecDeque<(Instant, Packet)>,
}

/// A node's broker link; see the module doc.
pub struct NodeLink {
    uid: String,
    config: LinkConfig,
    state: Mutex<State>,
    buffers: Mutex<Buffers>,
    /// True while the current connection is up; bumped on every connect.
    online: watch::Sender<bool>,
    /// Every connection's messages; the dispatcher takes config/updates.
    events: mpsc::Sender<Inbound>,
    /// Commands, on to the node.
    commands: mpsc::Sender<Inbound>,
    switched: Notify,
    /// Ends the link (and, cancelled without a DISCONNECT, makes the broker
    /// publish the last will).
    stop: CancellationToken,
    /// When (seconds) a refused move was last logged.
    refusal_logged_at: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are a few field updates; a panic leaves them whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NodeLink {
    /// Connects to `url` (falling back to `fallback` in order) and starts
    /// the link's tasks. Commands go to `commands`.
    pub fn start(
        uid: &str,
        config: LinkConfig,
        url: &str,
        fallback: Vec<String>,
        commands: mpsc::Sender<Inbound>,
    ) -> Result<Arc<NodeLink>, MqttError> {
        let stop = CancellationToken::new();
        let (events, events_rx) = mpsc::channel(256);
        let current = connect(&config, url, &events, &stop)?;
        let link = Arc::new(NodeLink {
            uid: uid.to_owned(),
            state: Mutex::new(State {
                stored: Stored {
                    url: url.to_owned(),
                    fallback,
                    ts: 0,
                },
                current,
            }),
            config,
            buffers: Mutex::default(),
            online: watch::channel(false).0,
            events,
            commands,
            switched: Notify::new(),
            stop,
            refusal_logged_at: AtomicI64::new(i64::MIN),
        });
        tokio::spawn(link.clone().dispatch(events_rx));
        tokio::spawn(link.clone().supervise());
        Ok(link)
    }

    /// The connection in use now.
    pub fn connection(&self) -> MqttConnection {
        lock(&self.state).current.connection.clone()
    }

    /// The URL of the broker in use now.
    pub fn broker_url(&self) -> String {
        lock(&self.state).current.url.clone()
    }

    pub fn is_connected(&self) -> bool {
        *self.online.borrow()
    }

    /// True while connected; changes (even true → true) on every connect,
    /// the moment to publish the status.
    pub fn connected_watch(&self) -> watch::Receiver<bool> {
        self.online.subscribe()
    }

    /// Telemetry packets waiting in the offline buffer.
    pub fn buffered(&self) -> usize {
        lock(&self.buffers).offline.len()
    }

    async fn publish_status(&self, state: NodeState) {
        let status = Status {
            status: state,
            ts: chrono::Utc::now().timestamp(),
        };
        let payload = serde_json::to_vec(&status).expect("status serialises");
        if let Err(e) = self
            .connection()
            .publish(&self.config.status_topic, payload, true)
            .await
        {
            metrics::counter!(m::PUBLISH_ERRORS, "kind" => "status").increment(1);
            debug!(node = %self.uid, error = %e, "Status publish failed.");
        }
    }

    /// Clean stop: sends what is buffered and the status OFFLINE (each at
    /// most `grace`), then DISCONNECT, so the broker keeps the last will.
    pub async fn shutdown(&self, grace: Duration) {
        let connection = self.connection();
        if connection.is_connected() {
            let _ = tokio::time::timeout(grace, self.flush(&connection)).await;
            let _ = tokio::time::timeout(grace, self.publish_status(NodeState::Offline)).await;
            connection.disconnect().await;
            let mut connected = connection.connected_watch();
            let _ = tokio::time::timeout(grace, connected.wait_for(|c| !*c)).await;
        }
        self.stop.cancel();
    }

    /// Ends the link without a DISCONNECT: the broker publishes the will.
    pub fn abort(&self) {
        self.stop.cancel();
    }
}

/// A connection to `url` with the node's subscriptions.
fn connect(
    config: &LinkConfig,
    url: &str,
    events: &mpsc::Sender<Inbound>,
    stop: &CancellationToken,
) -> Result<Current, MqttError> {
    let mut mqtt = config.template.clone();
    mqtt.url = url.to_owned();
    let conn_stop = stop.child_token();
    let connection = MqttConnection::start(mqtt, Some(events.clone()), conn_stop.clone())?;
    connection.subscribe(&config.commands_filter, QoS::AtLeastOnce)?;
    connection.subscribe(&config.config_topic, QoS::AtLeastOnce)?;
    Ok(Current {
        url: url.to_owned(),
        connection,
        stop: conn_stop,
    })
}
