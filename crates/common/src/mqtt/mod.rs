//! One persistent MQTT 5 connection to one broker, shared by a whole process.
//!
//! What the seed PERSISTENT_PUBLISHER.md asked for, done right:
//! - one connection per broker per process, never one per publish;
//! - the event loop runs in its own task, is never blocked by publishers, and
//!   keeps being polled after an error, with a capped exponential backoff;
//! - subscriptions are made again after every reconnect (see `on_connected`);
//! - `publish` resolves only when the broker acknowledged a QoS 1 message, and
//!   reports failure (not connected in time, refused, timed out) instead of
//!   swallowing it;
//! - QoS 1 publishes not yet acknowledged when the connection drops are sent
//!   again after the reconnect (see [`crate::mqtt::publish_tracker`]).
//!
//! Beside it: [`pool`] (every broker of the `brokers` table, one connection
//! each), [`watcher`] (the pool following that table), [`accounts`] (node
//! accounts on the brokers, dynamic security) and [`publish_tracker`].

pub mod accounts;
pub mod pool;
pub mod publish_tracker;
pub mod watcher;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::metrics as m;
use crate::mqtt::publish_tracker::PublishTracker;

/// Why a publish or subscribe did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    #[error("broker not connected")]
    NotConnected,
    #[error("broker did not acknowledge the publish in time")]
    Timeout,
    #[error("broker refused the publish: {0}")]
    Refused(String),
    #[error("too many publishes waiting for the broker")]
    Backpressure,
    #[error("MQTT connection is shut down")]
    Closed,
    #[error("invalid broker URL `{0}`: use mqtt://host:port or mqtts://host:port")]
    BadUrl(String),
}

impl MqttError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            MqttError::NotConnected => "not_connected",
            MqttError::Timeout => "timeout",
            MqttError::Refused(_) => "refused",
            MqttError::Backpressure => "backpressure",
            MqttError::Closed => "closed",
            MqttError::BadUrl(_) => "bad_url",
        }
    }
}

/// What the broker said about a QoS 1 publish it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// At least one subscription matched the topic.
    Matched,
    /// The broker took it, but nobody subscribed to the topic (MQTT 5 reason
    /// 0x10): a command to a node that is not on this broker goes nowhere.
    NoSubscribers,
}

/// Host, port and TLS flag of an `mqtt://host:port` / `mqtts://host:port` URL.
pub fn parse_broker_url(url: &str) -> Result<(String, u16, bool), MqttError> {
    let bad = || MqttError::BadUrl(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port, tls))
}

/// How to reach one broker and behave on it.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The broker's id in the `brokers` table, e.g. `mqtt1`; a metrics label.
    pub broker_id: String,
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Must be unique per connection on the broker.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub keep_alive: Duration,
    /// Published by the broker when this connection dies without a DISCONNECT.
    pub last_will: Option<LastWill>,
    /// The longest `publish` waits for a connection and the PUBACK.
    pub publish_timeout: Duration,
    /// Incoming QoS 1 messages are acknowledged only by [`MqttConnection::ack`].
    pub manual_acks: bool,
    /// QoS 1 publishes that may wait for their PUBACK at once; more wait for room.
    pub max_pending: usize,
    /// MQTT 5 session expiry in seconds. `None` (the default): a clean session
    /// on every connect. `Some(secs)`: the broker keeps the session (its
    /// subscriptions and the QoS 1 messages not yet acknowledged) for `secs`
    /// after a disconnect, so `client_id` must then be stable per instance.
    pub session_expiry: Option<u32>,
    /// Upper limit on QoS 1 publishes rumqttc keeps in flight; the broker's
    /// receive maximum still applies. `None`: rumqttc's own (65535). rumqttc
    /// allocates one slot per possible in-flight publish up front (a few MB
    /// per connection at 65535), which thousands of simulated nodes cannot
    /// afford.
    pub max_inflight: Option<u16>,
    /// TCP_NODELAY (the default): small packets leave at once. Off, the
    /// kernel may coalesce writes made while earlier ones are unacknowledged
    /// (Nagle): fewer, fuller segments for a connection whose latency does
    /// not matter, such as history-logger's stream of PUBACKs.
    pub nodelay: bool,
}

/// The longest [`MqttConnection::disconnect`] waits for its DISCONNECT to
/// leave.
pub const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

impl MqttConfig {
    /// Sensible defaults for one broker; `client_id` gets a random suffix.
    pub fn new(broker_id: &str, url: &str, client_prefix: &str) -> Self {
        MqttConfig {
            broker_id: broker_id.to_owned(),
            url: url.to_owned(),
            client_id: format!(
                "{client_prefix}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(15),
            last_will: None,
            publish_timeout: Duration::from_secs(5),
            manual_acks: false,
            max_pending: 4096,
            session_expiry: None,
            max_inflight: None,
            nodelay: true,
        }
    }

    /// Fills credentials, TLS and the publish timeout from the shared settings.
    pub fn with_settings(mut self, s: &crate::settings::Settings) -> Self {
        self.username = s.mqtt_user.clone();
        self.password = s.mqtt_pass.clone();
        self.publish_timeout = s.publish_timeout();
        self
    }

    fn options(&self) -> Result<MqttOptions, MqttError> {
        let (host, port, tls) = parse_broker_url(&self.url)?;
        let mut o = MqttOptions::new(self.client_id.clone(), host, port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_start(true)
            .set_manual_acks(self.manual_acks)
            .set_connection_timeout(5)
            // Room for every tracked publish to be re-queued at once after a
            // reconnect, plus subscribes and acks, without ever blocking.
            .set_request_channel_capacity(self.max_pending * 2 + 256)
            .set_max_packet_size(Some(1024 * 1024));
        if let Some(limit) = self.max_inflight {
            o.set_outgoing_inflight_upper_limit(limit);
        }
        if let Some(secs) = self.session_expiry {
            o.set_clean_start(false)
                .set_session_expiry_interval(Some(secs));
        }
        // Commands and acknowledgements are small packets: without
        // TCP_NODELAY, Nagle's algorithm holds them for the peer's delayed
        // ACK and a publish round trip takes tens of milliseconds.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(self.nodelay);
        network.set_connection_timeout(5);
        o.set_network_options(network);
        if let Some(user) = &self.username {
            let pass = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            o.set_credentials(user.clone(), pass);
        }
        if let Some(will) = &self.last_will {
            o.set_last_will(will.clone());
        }
        if tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
            o.set_transport(rumqttc::Transport::tls_with_default_config());
        }
        Ok(o)
    }
}

/// A message that arrived on a subscription.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Which broker it came from.
    pub broker_id: Arc<str>,
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// Kept for [`MqttConnection::ack`] when acks are manual.
    pub publish: Publish,
}

struct State {
    connected: bool,
    tracker: PublishTracker,
    subscriptions: HashMap<String, QoS>,
}

struct Shared {
    broker_id: Arc<str>,
    client: AsyncClient,
    state: Mutex<State>,
    connected_tx: watch::Sender<bool>,
    room: Semaphore,
    publish_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves consistent data (every
        // critical section is a handful of map operations), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle to one broker connection; cheap to clone.
#[derive(Clone)]
pub struct MqttConnection {
    shared: Arc<Shared>,
    connected_rx: watch::Receiver<bool>,
}

impl std::fmt::Debug for MqttConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConnection")
            .field("broker_id", &self.shared.broker_id)
            .finish()
    }
}

impl MqttConnection {
    /// Starts the connection's event loop; it connects in the background and
    /// runs until `shutdown`. Messages that arrive on a subscription go to
    /// `inbox` (several connections may share one inbox); without one they
    /// are discarded.
    pub fn start(
        config: MqttConfig,
        inbox: Option<mpsc::Sender<Inbound>>,
        shutdown: CancellationToken,
    ) -> Result<Self, MqttError> {
        let options = config.options()?;
        let cap = options.request_channel_capacity();
        let (client, eventloop) = AsyncClient::new(options, cap);
        let (connected_tx, connected_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            broker_id: config.broker_id.as_str().into(),
            client,
            state: Mutex::new(State {
                connected: false,
                tracker: PublishTracker::default(),
                subscriptions: HashMap::new(),
            }),
            connected_tx,
            room: Semaphore::new(config.max_pending.max(1)),
            publish_timeout: config.publish_timeout,
        });
        metrics::gauge!(m::MQTT_CONNECTED, "broker" => config.broker_id.clone()).set(0.0);
        tokio::spawn(run_event_loop(
            shared.clone(),
            eventloop,
            inbox,
            shutdown,
            config.url.clone(),
        ));
        Ok(MqttConnection {
            shared,
            connected_rx,
        })
    }

    /// The broker's id.
    pub fn broker_id(&self) -> &str {
        &self.shared.broker_id
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        *self.connected_rx.borrow()
    }

    /// Follows the connection state (true while connected), e.g. to publish a
    /// retained status again after each reconnect.
    pub fn connected_watch(&self) -> watch::Receiver<bool> {
        self.connected_rx.clone()
    }

    /// Waits until connected, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), MqttError> {
        let mut rx = self.connected_rx.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|c| *c)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(MqttError::Closed),
            Err(_) => Err(MqttError::NotConnected),
        }
    }

    /// QoS 1 publishes waiting for their PUBACK.
    pub fn pending_publishes(&self) -> usize {
        self.shared.lock().tracker.len()
    }

    /// Publishes with QoS 1 and waits for the broker's PUBACK, at most the
    /// configured publish timeout in all (waiting for a connection included).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
    ) -> Result<(), MqttError> {
        self.publish_delivery(topic, payload, retain)
            .await
            .map(drop)
    }

    /// Like [`MqttConnection::publish`], telling whether any subscription
    /// matched the topic.
    pub async fn publish_delivery(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
    ) -> Result<Delivery, MqttError> {
        let result = self.publish_inner(topic, payload.into(), retain).await;
        if let Err(e) = &result {
            metrics::counter!(m::MQTT_PUBLISH_ERRORS, "broker" => self.shared.broker_id.to_string(), "reason" => e.reason())
                .increment(1);
        }
        result
    }

    async fn publish_inner(
        &self,
        topic: &str,
        payload: Bytes,
        retain: bool,
    ) -> Result<Delivery, MqttError> {
        let deadline = Instant::now() + self.shared.publish_timeout;
        let _room = tokio::time::timeout_at(deadline, self.shared.room.acquire())
            .await
            .map_err(|_| MqttError::Backpressure)?
            .map_err(|_| MqttError::Closed)?;
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        loop {
            {
                let mut state = self.shared.lock();
                if state.connected {
                    self.shared
                        .client
                        .try_publish(topic, QoS::AtLeastOnce, retain, payload.clone())
                        .map_err(|_| MqttError::Backpressure)?;
                    let outcome = tx.take().expect("enqueued once");
                    state
                        .tracker
                        .enqueue(topic.to_owned(), payload, retain, outcome);
                    break;
                }
            }
            let mut watch = self.connected_rx.clone();
            match tokio::time::timeout_at(deadline, watch.wait_for(|c| *c)).await {
                Ok(Ok(_)) => continue,
                Ok(Err(_)) => return Err(MqttError::Closed),
                Err(_) => return Err(MqttError::NotConnected),
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(MqttError::Closed),
            Err(_) => Err(MqttError::Timeout),
        }
    }

    /// Subscribes now if connected, and again after every reconnect.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        let mut state = self.shared.lock();
        state.subscriptions.insert(filter.to_owned(), qos);
        if state.connected {
            self.shared
                .client
                .try_subscribe(filter, qos)
                .map_err(|_| MqttError::Backpressure)?;
        }
        Ok(())
    }

    /// Acknowledges an incoming QoS 1 message (only with manual acks).
    pub async fn ack(&self, message: &Inbound) -> Result<(), MqttError> {
        self.shared
            .client
            .ack(&message.publish)
            .await
            .map_err(|_| MqttError::Closed)
    }

    /// Sends DISCONNECT, so the broker does not publish the last will, and
    /// waits (at most [`DISCONNECT_WAIT`]) until it is out.
    ///
    /// The request only queues the packet; the event loop writes it, then
    /// stops and reports the connection down. A caller that stopped the loop
    /// right after queueing could cut the connection before the packet left,
    /// and the broker would publish the last will of a node that is alive
    /// elsewhere (seen when node-sim switched brokers).
    pub async fn disconnect(&self) {
        let mut connected = self.shared.connected_tx.subscribe();
        if self.shared.client.disconnect().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(DISCONNECT_WAIT, connected.wait_for(|up| !up)).await;
    }
}

async fn run_event_loop(
    shared: Arc<Shared>,
    mut eventloop: EventLoop,
    inbox: Option<mpsc::Sender<Inbound>>,
    shutdown: CancellationToken,
    url: String,
) {
    let broker = shared.broker_id.to_string();
    let mut backoff = Backoff::default();
    let mut failures_logged = 0u32;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                failures_logged = 0;
                on_connected(&shared, ack.session_present);
                info!(broker, url, "MQTT connected.");
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let result = match ack.reason {
                    PubAckReason::Success => Ok(Delivery::Matched),
                    PubAckReason::NoMatchingSubscribers => Ok(Delivery::NoSubscribers),
                    other => Err(MqttError::Refused(format!("{other:?}"))),
                };
                shared.lock().tracker.on_puback(ack.pkid, result);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                shared.lock().tracker.on_outgoing_publish(pkid)
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                shared.lock().tracker.on_await_ack(pkid)
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some(tx) = &inbox {
                    let message = Inbound {
                        broker_id: shared.broker_id.clone(),
                        topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                        payload: publish.payload.clone(),
                        retain: publish.retain,
                        publish,
                    };
                    // Waiting here is the backpressure: a consumer that falls
                    // behind slows the reads from the broker, which holds the rest.
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tx.send(message) => {}
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                for code in ack.return_codes {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        error!(broker, ?code, "Broker refused a subscription.");
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!(broker, "MQTT disconnected on request.");
                break;
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                warn!(broker, reason = ?d.reason_code, "Broker sent DISCONNECT.");
            }
            Ok(other) => debug!(broker, ?other, "MQTT event."),
            Err(e) => {
                let was_connected = on_disconnected(&shared, &mut eventloop);
                if was_connected {
                    metrics::counter!(m::MQTT_RECONNECTS, "broker" => broker.clone()).increment(1);
                    warn!(broker, url, error = %e, "MQTT connection lost; reconnecting.");
                } else if failures_logged < 3 || failures_logged.is_power_of_two() {
                    warn!(broker, url, error = %e, attempt = failures_logged + 1, "MQTT connect failed; retrying.");
                }
                failures_logged += 1;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    on_disconnected(&shared, &mut eventloop);
    for p in shared.lock().tracker.take_all() {
        let _ = p.outcome.send(Err(MqttError::Closed));
    }
    shared.room.close();
    debug!(broker, "MQTT event loop stopped.");
}

/// After CONNACK: make the subscriptions again and, without a session,
/// re-send every publish still waiting for its PUBACK, oldest first, before
/// any new one.
///
/// Subscriptions are made again even when the broker says it kept the
/// session: Mosquitto restores a persistent session from its persistence file
/// after a restart without its shared subscriptions, and still answers
/// `session_present`, so a client trusting it would receive nothing for good.
/// Subscribing again to a filter the session has is harmless.
fn on_connected(shared: &Shared, session_present: bool) {
    let mut state = shared.lock();
    if !session_present {
        for p in state.tracker.take_all() {
            match shared.client.try_publish(
                p.topic.clone(),
                QoS::AtLeastOnce,
                p.retain,
                p.payload.clone(),
            ) {
                Ok(()) => state.tracker.requeue(p),
                Err(_) => {
                    let _ = p.outcome.send(Err(MqttError::Backpressure));
                }
            }
        }
    }
    for (filter, qos) in &state.subscriptions {
        if shared.client.try_subscribe(filter.clone(), *qos).is_err() {
            error!(broker = %shared.broker_id, filter, "Could not restore a subscription.");
        }
    }
    state.connected = true;
    drop(state);
    shared.connected_tx.send_replace(true);
    metrics::gauge!(m::MQTT_CONNECTED, "broker" => shared.broker_id.to_string()).set(1.0);
}

/// After a connection error: stop new publishes, then pull every request
/// still in rumqttc's channel into its pending list, so that list and the
/// tracker hold the same publishes. Returns whether it was connected.
fn on_disconnected(shared: &Shared, eventloop: &mut EventLoop) -> bool {
    let was = std::mem::replace(&mut shared.lock().connected, false);
    eventloop.clean();
    if was {
        shared.connected_tx.send_replace(false);
        metrics::gauge!(m::MQTT_CONNECTED, "broker" => shared.broker_id.to_string()).set(0.0);
    }
    was
}

/// Reconnect delays: 100 ms doubling to 2 s, with jitter so that many
/// clients of a restarted broker do not come back in lockstep.
#[derive(Debug, Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE_MS: u64 = 100;
    const MAX_MS: u64 = 2_000;

    fn next_delay(&mut self) -> Duration {
        let exp = Self::BASE_MS
            .saturating_mul(1 << self.attempt.min(10))
            .min(Self::MAX_MS);
        self.attempt += 1;
        let jitter = rand::random_range(0..=exp / 4);
        Duration::from_millis(exp - exp / 8 + jitter)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            parse_broker_url("mqtts://broker.example").unwrap(),
            ("broker.example".into(), 8883, true)
        );
        assert_eq!(parse_broker_url("mqtt://h").unwrap().1, 1883);
        for bad in [
            "tcp://h:1",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtt://h:99999",
            "h:1883",
        ] {
            assert!(parse_broker_url(bad).is_err(), "{bad}");
        }
    }

    /// Each delay, attempt by attempt: 100 ms doubling to the 2 s cap, each
    /// within about ±1/8 of its step (the jitter), and back to 100 ms after a
    /// reset. The steps' windows do not overlap, so a delay out of order
    /// fails; many rounds cover the jitter's range.
    #[test]
    fn backoff_doubles_from_100_ms_to_2_s_with_an_eighth_of_jitter() {
        const STEPS_MS: [u64; 8] = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        let within = |d: Duration, step: u64| {
            let ms = d.as_millis() as u64;
            (step - step / 8..=step - step / 8 + step / 4).contains(&ms)
        };
        let mut b = Backoff::default();
        for round in 0..200 {
            for (attempt, step) in STEPS_MS.iter().enumerate() {
                let d = b.next_delay();
                assert!(
                    within(d, *step),
                    "round {round}, attempt {attempt}: {d:?} for a {step} ms step"
                );
            }
            b.reset();
        }
        // Far past the cap (the shift is bounded), still 2 s.
        for attempt in 0..100 {
            let d = b.next_delay();
            assert!(attempt < 5 || within(d, 2000), "attempt {attempt}: {d:?}");
        }
    }
}
