//! One persistent connection: the handle publishers share, the event loop
//! that keeps it (reconnects with backoff, subscriptions made again, QoS 1
//! publishes re-sent after a reconnect).

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::metrics as m;
use crate::mqtt::config::{DISCONNECT_WAIT, MqttConfig};
use crate::mqtt::error::{Delivery, MqttError};
use crate::mqtt::publish_tracker::PublishTracker;
use crate::runtime::backoff::Backoff;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

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
    // Reconnect delays: 100 ms doubling to 2 s, jittered.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).jittered();
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
                if !backoff.pause(&shutdown).await {
                    break;
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
