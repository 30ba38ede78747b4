//! One node in firmware mode (`SIM_MODE=firmware`): the hydro2.0 firmware's
//! life from its first boot, as MQTT_SPEC_FULL.md §4.2, §5, §7.3 and §9.1
//! and mqtt_manager.c describe it.
//!
//! - It boots **unbound**, named by its hardware id in the temp namespace
//!   `hydro/gh-temp/zn-temp/{hardware_id}`, unless its saved config binds it.
//! - On every connect (last will `…/lwt` = `offline`, retained) it subscribes
//!   to `hydro/time/response`, its config topics and its command filter,
//!   asks for the time, and says `hydro/node_hello` while unbound (without
//!   the `config_update` capability: it ignores `nodes/{node}/config/update`).
//! - It publishes nothing carrying a `ts` before its first time response;
//!   then (and on each later connect) status ONLINE (retained) and its
//!   `config_report`, and from then on telemetry and heartbeats. Commands
//!   before that are answered ERROR `time_not_synced`.
//! - A pushed NodeConfig is checked and decided as the firmware does
//!   ([`super::config::decide`]); applied, it is saved and the node takes its
//!   identity, secret and channels; a new namespace or broker means a clean
//!   disconnect and a connect there (a bind, an unbind, a move), after
//!   which the connect sequence reports from the new place.
//! - Commands are checked with [`super::signature`] and then run on the same
//!   physics and command rules as a classic node ([`super::commands`]);
//!   what it publishes, and when, is in [`super::uplink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use common::placement::node_config;
use common::{LastWill, QoS};
use proto::payloads::{LWT_PAYLOAD, NodeConfig, NodeState, TimeResponse};
use proto::topics::{NodeTopic, TIME_RESPONSE, TopicKind, channel_topic, node_topic};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::FirmwareContext;
use super::clock::Clock;
use super::config::{
    ConfigStore, Decision, Namespace, broker_url, decide, hardware_id, namespace_of,
};
use crate::layout::NodeSpec;
use crate::physics::{Physics, current_hour};
use crate::recent::{RECENT_CAPACITY, RecentCommands};

/// The `fw_version` a firmware-mode node reports (hello, heartbeat, config_report).
pub const FW_VERSION: &str = "sim-fw-1.0";
/// Messages waiting for the node's session loop.
const INBOX_CAPACITY: usize = 1024;
/// QoS 1 publishes one node keeps in flight.
const NODE_MAX_INFLIGHT: u16 = 32;
/// How long a clean stop waits for each of its steps.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a node waits before connecting again after a failed start.
const RETRY_CONNECT: Duration = Duration::from_secs(1);

/// A running firmware-mode node; cheap to clone.
#[derive(Clone)]
pub struct FirmwareNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FirmwareNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmwareNode")
            .field("hardware_id", &self.inner.hardware_id)
            .finish()
    }
}

/// The connection in use and how to end it.
struct Current {
    connection: MqttConnection,
    url: String,
    /// Cancelled without a DISCONNECT, the broker publishes the last will.
    stop: CancellationToken,
}

/// What ends a session on one connection.
enum Next {
    Stop,
    /// Leave cleanly and connect to this broker (the namespace may have changed too).
    Reconnect(String),
}

pub(super) struct Inner {
    pub(super) hardware: NodeSpec,
    pub(super) hardware_id: String,
    pub(super) ctx: Arc<FirmwareContext>,
    pub(super) store: ConfigStore,
    /// The config it runs; `None` until one is pushed (or loaded).
    pub(super) config: Mutex<Option<NodeConfig>>,
    pub(super) clock: Mutex<Clock>,
    pub(super) physics: Mutex<Physics>,
    pub(super) recent: Mutex<RecentCommands>,
    current: Mutex<Option<Current>>,
    pub(super) online: watch::Sender<bool>,
    pub(super) executed: AtomicU64,
    pub(super) started: Instant,
    pub(super) loops: CancellationToken,
    pub(super) tasks: TaskTracker,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are a few field updates; a panic leaves them whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FirmwareNode {
    /// Boots the node: loads its saved config (if `SIM_STATE_DIR` holds
    /// one), then connects and keeps connecting until stopped.
    pub fn start(hardware: NodeSpec, ctx: Arc<FirmwareContext>) -> FirmwareNode {
        let hardware_id = hardware_id(&ctx.hardware_seed, hardware.index);
        let store = ConfigStore::new(ctx.state_dir.as_deref(), &hardware_id);
        let saved = store.load();
        if let Some(c) = &saved {
            info!(hardware_id, node = %c.node_id, gh = %c.gh_uid, zone = %c.zone_uid, "Saved config loaded.");
        }
        let inner = Arc::new(Inner {
            physics: Mutex::new(Physics::new(rand::random(), current_hour())),
            recent: Mutex::new(RecentCommands::new(RECENT_CAPACITY)),
            config: Mutex::new(saved),
            clock: Mutex::new(Clock::new()),
            current: Mutex::new(None),
            online: watch::channel(false).0,
            executed: AtomicU64::new(0),
            started: Instant::now(),
            loops: CancellationToken::new(),
            tasks: TaskTracker::new(),
            hardware,
            hardware_id,
            ctx,
            store,
        });
        inner.tasks.spawn(inner.clone().run());
        FirmwareNode { inner }
    }

    /// Its hardware id, `esp32-` and 12 hex digits.
    pub fn hardware_id(&self) -> &str {
        &self.inner.hardware_id
    }

    /// What the node is (kind, hardware channels, layout index).
    pub fn spec(&self) -> &NodeSpec {
        &self.inner.hardware
    }

    /// Where it publishes now.
    pub fn namespace(&self) -> Namespace {
        self.inner.namespace()
    }

    /// The config it runs (with its secret), if it was given one.
    pub fn config(&self) -> Option<NodeConfig> {
        lock(&self.inner.config).clone()
    }

    pub fn is_connected(&self) -> bool {
        *self.inner.online.borrow()
    }

    pub fn is_time_synced(&self) -> bool {
        lock(&self.inner.clock).is_synced()
    }

    /// The broker it is connected (or connecting) to.
    pub fn broker_url(&self) -> Option<String> {
        self.inner.current_url()
    }

    /// Commands run (not counting refused ones and redeliveries).
    pub fn commands_executed(&self) -> u64 {
        self.inner.executed.load(Ordering::Relaxed)
    }

    /// Stops cleanly: status OFFLINE (when it had said ONLINE), then a
    /// DISCONNECT, so the broker does not publish the last will.
    pub async fn stop(&self) {
        let inner = &self.inner;
        inner.loops.cancel();
        inner.tasks.close();
        let _ = tokio::time::timeout(STOP_GRACE, inner.tasks.wait()).await;
        let current = lock(&inner.current).take();
        if let Some(current) = current {
            if current.connection.is_connected() && lock(&inner.clock).is_synced() {
                let _ = tokio::time::timeout(
                    STOP_GRACE,
                    inner.publish_status(&current.connection, NodeState::Offline),
                )
                .await;
            }
            leave(current).await;
        }
        inner.online.send_replace(false);
    }

    /// Cuts the node off as a power cut would: no DISCONNECT, so the broker
    /// publishes its last will.
    pub fn abort(&self) {
        self.inner.loops.cancel();
        if let Some(current) = lock(&self.inner.current).take() {
            current.stop.cancel();
        }
        self.inner.online.send_replace(false);
    }
}

impl Inner {
    /// The broker of the connection in use.
    pub(super) fn current_url(&self) -> Option<String> {
        lock(&self.current).as_ref().map(|c| c.url.clone())
    }

    pub(super) fn namespace(&self) -> Namespace {
        namespace_of(lock(&self.config).as_ref(), &self.hardware_id)
    }

    pub(super) fn secret(&self) -> String {
        lock(&self.config)
            .as_ref()
            .and_then(|c| c.node_secret.clone())
            .unwrap_or_else(|| {
                self.ctx
                    .settings
                    .node_default_secret
                    .expose_secret()
                    .to_owned()
            })
    }

    pub(super) fn topic(&self, kind: TopicKind) -> String {
        let ns = self.namespace();
        node_topic(&ns.gh, &ns.zone, &ns.node, kind)
    }

    pub(super) fn channel_topic(&self, channel: &str, kind: TopicKind) -> String {
        let ns = self.namespace();
        channel_topic(&ns.gh, &ns.zone, &ns.node, channel, kind)
    }

    /// The broker it boots on: its saved config's, else its entry of the list.
    fn boot_url(&self) -> String {
        lock(&self.config)
            .as_ref()
            .and_then(broker_url)
            .unwrap_or_else(|| {
                crate::settings::broker_for(&self.ctx.broker_urls, self.hardware.index).to_owned()
            })
    }

    async fn run(self: Arc<Self>) {
        let mut url = self.boot_url();
        loop {
            let (connection, inbox) = match self.connect(&url) {
                Ok(c) => c,
                Err(e) => {
                    warn!(hardware_id = %self.hardware_id, url, error = %e, "Cannot connect; retrying.");
                    tokio::select! {
                        _ = self.loops.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_CONNECT) => continue,
                    }
                }
            };
            match self.session(&connection, inbox).await {
                Next::Stop => return,
                Next::Reconnect(next) => {
                    let old = lock(&self.current).take();
                    if let Some(old) = old {
                        leave(old).await;
                    }
                    self.online.send_replace(false);
                    url = next;
                }
            }
        }
    }

    /// A connection to `url` with the last will and subscriptions of the
    /// node's namespace now.
    fn connect(&self, url: &str) -> Result<(MqttConnection, mpsc::Receiver<Inbound>), MqttError> {
        let ns = self.namespace();
        let mut config = MqttConfig::new(&self.hardware_id, url, &self.hardware_id)
            .with_settings(&self.ctx.settings);
        let saved = lock(&self.config).clone();
        // A config's own login wins, as the node stores it (`username` /
        // `password`, or `user` / `pass`); an unbound node without one logs
        // in as the provision account, its client id = its hardware id (the
        // brokers' ACL holds it to its own temp namespace by that id).
        match saved.as_ref().and_then(|c| node_config::login(&c.mqtt)) {
            Some((user, pass)) => {
                config.username = Some(user);
                config.password = Some(SecretString::from(pass));
            }
            None if ns.is_temp() => {
                if let Some((user, pass)) = &self.ctx.provision_login {
                    config.username = Some(user.clone());
                    config.password = Some(pass.clone());
                    config.client_id = self.hardware_id.clone();
                }
            }
            None => {}
        }
        if let Some(k) = saved
            .as_ref()
            .and_then(NodeConfig::mqtt_target)
            .and_then(|m| m.keepalive)
            .filter(|k| *k > 0)
        {
            config.keep_alive = Duration::from_secs(u64::from(k));
        }
        config.max_inflight = Some(NODE_MAX_INFLIGHT);
        config.nodelay = self.ctx.tcp_nodelay;
        config.last_will = Some(LastWill::new(
            node_topic(&ns.gh, &ns.zone, &ns.node, TopicKind::Lwt),
            LWT_PAYLOAD,
            QoS::AtLeastOnce,
            true,
            None,
        ));
        // Room for a burst of commands: a full inbox holds up the
        // connection's reads, PUBACKs included.
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let stop = CancellationToken::new();
        let connection = MqttConnection::start(config, Some(tx), stop.clone())?;
        let temp = Namespace::temp(&self.hardware_id);
        let mut filters = vec![
            TIME_RESPONSE.to_owned(),
            node_topic(&temp.gh, &temp.zone, &temp.node, TopicKind::Config),
            format!("hydro/{}/{}/{}/+/command", ns.gh, ns.zone, ns.node),
        ];
        if !ns.is_temp() {
            filters.push(node_topic(&ns.gh, &ns.zone, &ns.node, TopicKind::Config));
        }
        for filter in &filters {
            connection.subscribe(filter, QoS::AtLeastOnce)?;
        }
        info!(hardware_id = %self.hardware_id, url, gh = %ns.gh, zone = %ns.zone, node = %ns.node, "Connecting.");
        *lock(&self.current) = Some(Current {
            connection: connection.clone(),
            url: url.to_owned(),
            stop,
        });
        Ok((connection, rx))
    }

    /// Serves one connection until the node stops or must reconnect.
    async fn session(
        self: &Arc<Self>,
        connection: &MqttConnection,
        mut inbox: mpsc::Receiver<Inbound>,
    ) -> Next {
        let mut connected = connection.connected_watch();
        let mut telemetry = crate::node::staggered_interval(self.ctx.telemetry_interval);
        let mut heartbeat = crate::node::staggered_interval(self.ctx.heartbeat_interval);
        let mut time_retry =
            tokio::time::interval_at(Instant::now() + self.ctx.time_retry, self.ctx.time_retry);
        time_retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_step = Instant::now();
        if *connected.borrow_and_update() {
            self.on_connect(connection).await;
        }
        loop {
            tokio::select! {
                _ = self.loops.cancelled() => return Next::Stop,
                changed = connected.changed() => {
                    if changed.is_err() {
                        // The connection ended under us: start a new one.
                        return Next::Reconnect(self.current_url().unwrap_or_else(|| self.boot_url()));
                    }
                    let up = *connected.borrow_and_update();
                    if up {
                        self.on_connect(connection).await;
                    } else {
                        self.online.send_replace(false);
                        debug!(hardware_id = %self.hardware_id, "Disconnected.");
                    }
                }
                message = inbox.recv() => {
                    let Some(message) = message else {
                        return Next::Reconnect(self.current_url().unwrap_or_else(|| self.boot_url()));
                    };
                    if let Some(next) = self.on_message(connection, message).await {
                        return next;
                    }
                }
                _ = telemetry.tick() => {
                    let now = Instant::now();
                    lock(&self.physics).step((now - last_step).as_secs_f64(), current_hour());
                    last_step = now;
                    if connection.is_connected() {
                        self.publish_telemetry(connection, None).await;
                    }
                }
                _ = heartbeat.tick() => {
                    if connection.is_connected() && lock(&self.clock).is_synced() {
                        self.publish_heartbeat(connection).await;
                    }
                }
                _ = time_retry.tick() => {
                    // mqtt_manager's retry task: ask again until answered.
                    if connection.is_connected() && !lock(&self.clock).is_synced() {
                        self.request_time(connection).await;
                    }
                }
            }
        }
    }

    /// The connect sequence after the subscriptions (made with the connection).
    async fn on_connect(&self, connection: &MqttConnection) {
        self.online.send_replace(true);
        let ns = self.namespace();
        info!(hardware_id = %self.hardware_id, node = %ns.node, "Connected; asking for the time.");
        self.request_time(connection).await;
        if ns.is_temp() {
            self.publish_hello(connection).await;
        }
        if lock(&self.clock).is_synced() {
            self.announce(connection).await;
        }
    }

    /// Status ONLINE and the config report: after the first time response,
    /// on every later connect, and after a config is applied in place.
    async fn announce(&self, connection: &MqttConnection) {
        self.publish_status(connection, NodeState::Online).await;
        self.publish_config_report(connection).await;
    }

    async fn on_message(
        self: &Arc<Self>,
        connection: &MqttConnection,
        message: Inbound,
    ) -> Option<Next> {
        if message.topic == TIME_RESPONSE {
            self.on_time(connection, &message.payload).await;
            return None;
        }
        match NodeTopic::parse(&message.topic) {
            Ok(t) if t.kind == TopicKind::Config => {
                self.on_config(connection, &message.payload).await
            }
            Ok(NodeTopic {
                kind: TopicKind::Command,
                channel: Some(channel),
                ..
            }) => {
                self.on_command(channel, &message.payload);
                None
            }
            _ => None,
        }
    }

    async fn on_time(&self, connection: &MqttConnection, payload: &[u8]) {
        let Ok(time) = TimeResponse::decode(payload) else {
            debug!(hardware_id = %self.hardware_id, "Undecodable time response ignored.");
            return;
        };
        let unix_ts = if time.unix_ts > 0 {
            time.unix_ts
        } else {
            time.server_time
        };
        let first = {
            let mut clock = lock(&self.clock);
            let first = !clock.is_synced();
            if !clock.set(unix_ts) {
                warn!(hardware_id = %self.hardware_id, unix_ts, "Implausible time response ignored.");
                return;
            }
            first
        };
        if first {
            info!(hardware_id = %self.hardware_id, unix_ts, "Time synchronised.");
            self.announce(connection).await;
        }
    }

    async fn on_config(&self, connection: &MqttConnection, payload: &[u8]) -> Option<Next> {
        let current = lock(&self.config).clone();
        let config = match decide(payload, current.as_ref(), self.ctx.apply_connectivity_only) {
            Decision::Invalid(problem) => {
                warn!(hardware_id = %self.hardware_id, problem, "Config refused.");
                return None;
            }
            Decision::Keep(why) => {
                info!(hardware_id = %self.hardware_id, why, "Config acknowledged, not applied.");
                if lock(&self.clock).is_synced() {
                    self.publish_config_report(connection).await;
                }
                return None;
            }
            Decision::Apply(config) => *config,
        };
        if let Err(e) = self.store.save(&config) {
            warn!(hardware_id = %self.hardware_id, error = %e, "Config not saved; applied for this run only.");
        }
        let here = self.current_url().unwrap_or_default();
        let old_ns = self.namespace();
        let old_login = current.as_ref().and_then(|c| node_config::login(&c.mqtt));
        let target = broker_url(&config).unwrap_or_else(|| here.clone());
        let login = node_config::login(&config.mqtt);
        *lock(&self.config) = Some(config);
        let ns = self.namespace();
        info!(hardware_id = %self.hardware_id, node = %ns.node, gh = %ns.gh, zone = %ns.zone, broker = %target, "Config applied.");
        let relogin = login.is_some() && login != old_login;
        if ns != old_ns || target != here || relogin {
            return Some(Next::Reconnect(target));
        }
        if lock(&self.clock).is_synced() {
            self.announce(connection).await;
        }
        None
    }

    pub(super) fn connection(&self) -> Option<MqttConnection> {
        lock(&self.current).as_ref().map(|c| c.connection.clone())
    }
}

/// Leaves a broker cleanly: lets the publishes in flight finish, sends
/// DISCONNECT and waits until it is processed, so the broker keeps the
/// last will to itself; then ends the connection.
async fn leave(current: Current) {
    let deadline = Instant::now() + STOP_GRACE;
    while current.connection.pending_publishes() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if current.connection.is_connected() {
        current.connection.disconnect().await;
        let mut watch = current.connection.connected_watch();
        let _ = tokio::time::timeout(STOP_GRACE, watch.wait_for(|c| !*c)).await;
    }
    current.stop.cancel();
}
