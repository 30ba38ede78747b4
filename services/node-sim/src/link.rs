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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use proto::payloads::{ConfigUpdate, NodeState, Status};
use proto::signing;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics as m;
use crate::node::MAX_CLOCK_SKEW_SECS;

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

/// Checks a move before it is applied (see the module doc): signed with
/// `secret`, and its `ts` within [`MAX_CLOCK_SKEW_SECS`] of `now` — or, for
/// a retained copy the broker `replayed` on subscribe, not from the future.
/// The error is the refusal's reason (`unsigned`, `bad_signature`, `stale`,
/// `future`).
pub fn check_move(
    config: &ConfigUpdate,
    secret: &[u8],
    replayed: bool,
    now: i64,
) -> Result<(), &'static str> {
    if config.sig.is_empty() {
        return Err("unsigned");
    }
    if !signing::verify_config_update(secret, config) {
        return Err("bad_signature");
    }
    if config.ts - now >= MAX_CLOCK_SKEW_SECS {
        return Err("future");
    }
    if !replayed && now - config.ts >= MAX_CLOCK_SKEW_SECS {
        return Err("stale");
    }
    Ok(())
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

    /// Publishes on the current connection (status, heartbeat, responses).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
    ) -> Result<(), MqttError> {
        self.connection().publish(topic, payload, retain).await
    }

    /// Hands one reading over: published now when connected (true once the
    /// broker acknowledged it), else — or when the publish fails — kept in
    /// the offline buffer for the next connection (false).
    pub async fn send_telemetry(&self, topic: String, payload: Vec<u8>) -> bool {
        metrics::counter!(m::TELEMETRY_GENERATED).increment(1);
        let packet = Packet {
            topic,
            payload: payload.into(),
        };
        if !self.is_connected() {
            self.buffer(packet, false);
            return false;
        }
        let connection = self.connection();
        // A reading whose publish failed after the connect's flush (it was in
        // flight on the connection that died) goes out first, oldest first.
        if self.buffered() > 0 {
            self.flush(&connection).await;
            if self.buffered() > 0 {
                self.buffer(packet, false);
                return false;
            }
        }
        match connection
            .publish(&packet.topic, packet.payload.clone(), false)
            .await
        {
            Ok(()) => {
                self.remember(packet);
                true
            }
            Err(e) => {
                debug!(node = %self.uid, error = %e, "Telemetry publish failed; buffered.");
                self.buffer(packet, false);
                false
            }
        }
    }

    /// Into the offline buffer (at the front for a replay), dropping the
    /// oldest beyond [`BUFFER_PACKETS`].
    fn buffer(&self, packet: Packet, front: bool) {
        let mut b = lock(&self.buffers);
        if front {
            b.offline.push_front(packet);
        } else {
            b.offline.push_back(packet);
        }
        while b.offline.len() > BUFFER_PACKETS {
            b.offline.pop_front();
            metrics::counter!(m::TELEMETRY_BUFFER_DROPPED).increment(1);
        }
    }

    /// Keeps an acknowledged reading for the replay window.
    fn remember(&self, packet: Packet) {
        let now = Instant::now();
        let mut b = lock(&self.buffers);
        while b
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > REPLAY_WINDOW)
        {
            b.recent.pop_front();
        }
        b.recent.push_back((now, packet));
    }

    /// The connection dropped: what it acknowledged lately goes out again.
    fn replay_recent(&self) {
        let now = Instant::now();
        let mut b = lock(&self.buffers);
        let recent: Vec<Packet> = b
            .recent
            .drain(..)
            .filter(|(at, _)| now.duration_since(*at) <= REPLAY_WINDOW)
            .map(|(_, p)| p)
            .collect();
        drop(b);
        for p in recent.into_iter().rev() {
            self.buffer(p, true);
        }
    }

    /// Sends the offline buffer on `connection`, oldest first, until it is
    /// empty or a publish fails (the packet goes back to the front).
    async fn flush(&self, connection: &MqttConnection) {
        loop {
            let Some(packet) = lock(&self.buffers).offline.pop_front() else {
                return;
            };
            match connection
                .publish(&packet.topic, packet.payload.clone(), false)
                .await
            {
                Ok(()) => {
                    metrics::counter!(m::TELEMETRY_PUBLISHED).increment(1);
                    self.remember(packet);
                }
                Err(_) => {
                    self.buffer(packet, true);
                    return;
                }
            }
        }
    }

    /// Takes config/updates; passes everything else on to the node.
    async fn dispatch(self: Arc<Self>, mut events: mpsc::Receiver<Inbound>) {
        loop {
            let message = tokio::select! {
                _ = self.stop.cancelled() => return,
                m = events.recv() => match m { Some(m) => m, None => return },
            };
            if message.topic == self.config.config_topic {
                self.on_config(&message).await;
            } else if self.commands.send(message).await.is_err() {
                return;
            }
        }
    }

    async fn on_config(&self, message: &Inbound) {
        let config = match ConfigUpdate::decode(&message.payload) {
            Ok(c) => c,
            Err(e) => {
                self.refuse_move("invalid", &e.to_string());
                return;
            }
        };
        // The broker flags a retained message only when it replays it on
        // subscribe; one published while the node listens arrives unflagged.
        if let Err(reason) = check_move(
            &config,
            &self.config.secret,
            message.retain,
            chrono::Utc::now().timestamp(),
        ) {
            self.refuse_move(reason, &format!("ts {}", config.ts));
            return;
        }
        let target = {
            let mut state = lock(&self.state);
            if config.ts <= state.stored.ts {
                return; // already applied, or a stale retained copy
            }
            state.stored = Stored {
                url: config.mqtt_broker.clone(),
                fallback: config.fallback.clone(),
                ts: config.ts,
            };
            (state.current.url != config.mqtt_broker).then(|| config.mqtt_broker.clone())
        };
        match target {
            None => {
                // Already there: say so, which confirms the move.
                debug!(node = %self.uid, broker = %config.broker_id, "Config names the current broker.");
                self.publish_status(NodeState::Online).await;
            }
            Some(url) => {
                info!(node = %self.uid, broker = %config.broker_id, url = %url, "Config update: switching broker.");
                self.switch_to(&url).await;
            }
        }
    }

    /// Counts a refused move, and logs it unless one was logged lately.
    fn refuse_move(&self, reason: &'static str, detail: &str) {
        metrics::counter!(m::MOVES_REFUSED, "reason" => reason).increment(1);
        let now = chrono::Utc::now().timestamp();
        let last = self.refusal_logged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= REFUSAL_LOG_EVERY_SECS
            && self
                .refusal_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(node = %self.uid, reason, detail, "Config/update refused; not applied.");
        }
    }

    /// Make before break: connect to `url`, wait until it answers (at most
    /// [`SWITCH_WAIT`]), make it current, then let the old connection finish
    /// its publishes and leave with a DISCONNECT (no last will).
    async fn switch_to(&self, url: &str) {
        let next = match connect(&self.config, url, &self.events, &self.stop) {
            Ok(c) => c,
            Err(e) => {
                warn!(node = %self.uid, url, error = %e, "Cannot switch broker.");
                return;
            }
        };
        let _ = next.connection.wait_connected(SWITCH_WAIT).await;
        let old = {
            let mut state = lock(&self.state);
            if state.stored.url != url {
                // A newer config arrived meanwhile; it does its own switch.
                next.stop.cancel();
                return;
            }
            std::mem::replace(&mut state.current, next)
        };
        self.switched.notify_one();
        let deadline = Instant::now() + DRAIN_WAIT;
        while old.connection.pending_publishes() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        old.connection.disconnect().await;
        old.stop.cancel();
    }

    /// Replaces a dead connection with one to `url` (break before make).
    fn replace_with(&self, url: &str) {
        match connect(&self.config, url, &self.events, &self.stop) {
            Ok(next) => {
                let old = std::mem::replace(&mut lock(&self.state).current, next);
                old.stop.cancel();
            }
            Err(e) => {
                warn!(node = %self.uid, url, error = %e, "Cannot connect to a fallback broker.")
            }
        }
    }

    /// Follows the current connection: online/offline, the replay on a drop,
    /// the flush on a connect, and the fallback list while down.
    async fn supervise(self: Arc<Self>) {
        let mut cursor = 0usize;
        let mut down_since = Some(Instant::now());
        loop {
            let connection = self.connection();
            let mut watch = connection.connected_watch();
            let up = *watch.borrow_and_update();
            if up {
                down_since = None;
                self.online.send_replace(true);
                let link = self.clone();
                let c = connection.clone();
                tokio::spawn(async move { link.flush(&c).await });
            } else {
                if self.online.send_replace(false) {
                    self.replay_recent();
                }
                down_since.get_or_insert_with(Instant::now);
            }
            let fallback_at = down_since.map(|d| d + self.config.fallback_after);
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.switched.notified() => {
                    cursor = 0;
                    down_since = Some(Instant::now());
                }
                changed = watch.changed() => {
                    if changed.is_err() {
                        // This connection ended (replaced); the loop takes the new one.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                _ = sleep_until(fallback_at) => {
                    let candidates = lock(&self.state).stored.candidates();
                    if candidates.len() == 1 {
                        // Nowhere else to go: the connection keeps retrying.
                        down_since = Some(Instant::now());
                        continue;
                    }
                    cursor = (cursor + 1) % candidates.len();
                    let url = &candidates[cursor];
                    info!(node = %self.uid, url = %url, "Broker unreachable; trying the next one.");
                    self.replace_with(url);
                    down_since = Some(Instant::now());
                }
            }
        }
    }

    async fn publish_status(&self, state: NodeState) {
        let status = Status {
            status: state,
            ts: chrono::Utc::now().timestamp(),
        };
        let payload = serde_json::to_vec(&status).expect("status serialises");
        if let Err(e) = self.publish(&self.config.status_topic, payload, true).await {
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_stored_broker_then_the_fallbacks_once() {
        let s = Stored {
            url: "mqtt://b:1".into(),
            fallback: vec![
                "mqtt://c:1".into(),
                "mqtt://b:1".into(),
                "mqtt://a:1".into(),
            ],
            ts: 5,
        };
        assert_eq!(s.candidates(), ["mqtt://b:1", "mqtt://c:1", "mqtt://a:1"]);
    }

    #[test]
    fn a_move_must_be_signed_and_fresh_unless_replayed() {
        let now = 1_800_000_000;
        let config = |ts| ConfigUpdate {
            mqtt_broker: "mqtt://b:1".into(),
            broker_id: "b".into(),
            fallback: vec![],
            ts,
            sig: String::new(),
        };
        let signed = |ts| signing::sign_config_update(b"k", config(ts));
        assert_eq!(check_move(&config(now), b"k", false, now), Err("unsigned"));
        assert_eq!(
            check_move(&signed(now), b"other", false, now),
            Err("bad_signature")
        );
        let mut forged = signed(now);
        forged.mqtt_broker = "mqtt://127.0.0.1:1".into();
        assert_eq!(check_move(&forged, b"k", false, now), Err("bad_signature"));
        assert_eq!(check_move(&signed(now), b"k", false, now), Ok(()));
        assert_eq!(check_move(&signed(now - 9), b"k", false, now), Ok(()));
        assert_eq!(
            check_move(&signed(now - 10), b"k", false, now),
            Err("stale")
        );
        assert_eq!(
            check_move(&signed(now + 10), b"k", false, now),
            Err("future")
        );
        // A retained copy replayed on subscribe may be old, not from the future.
        assert_eq!(check_move(&signed(now - 86_400), b"k", true, now), Ok(()));
        assert_eq!(
            check_move(&signed(now + 10), b"k", true, now),
            Err("future")
        );
        assert_eq!(
            check_move(&config(now - 5), b"k", true, now),
            Err("unsigned")
        );
    }
}
