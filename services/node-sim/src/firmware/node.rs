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
//!   physics and command rules as a classic node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use common::payloads::{
    CommandResponse, Heartbeat, LWT_PAYLOAD, MetricType, NodeConfig, NodeConfigChannel, NodeHello,
    NodeState, ResponseStatus, Status, TimeResponse,
};
use common::topics::{
    GLOBAL_NODE_HELLO, NodeTopic, TIME_REQUEST, TIME_RESPONSE, TopicKind, channel_topic, node_topic,
};
use common::{LastWill, QoS};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::FirmwareContext;
use super::clock::Clock;
use super::config::{
    ConfigStore, Decision, Namespace, broker_url, decide, hardware_id, namespace_of, report,
};
use super::signature::{self, HmacRejection};
use crate::command::{Action, Rejection, parse_action};
use crate::layout::{ChannelSpec, ChannelType, NodeKind, NodeSpec};
use crate::metrics as m;
use crate::node::{MAX_DONE_WAIT, reading};
use crate::physics::{Physics, current_hour};
use crate::recent::{RECENT_CAPACITY, RecentCommands, Seen};

/// The `fw_version` a firmware-mode node reports (hello, heartbeat, config_report).
pub const FW_VERSION: &str = "sim-fw-1.0";
/// The NodeConfig format a node without a pushed config reports.
const CONFIG_VERSION: u32 = 3;
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

struct Inner {
    hardware: NodeSpec,
    hardware_id: String,
    ctx: Arc<FirmwareContext>,
    store: ConfigStore,
    /// The config it runs; `None` until one is pushed (or loaded).
    config: Mutex<Option<NodeConfig>>,
    clock: Mutex<Clock>,
    physics: Mutex<Physics>,
    recent: Mutex<RecentCommands>,
    current: Mutex<Option<Current>>,
    online: watch::Sender<bool>,
    executed: AtomicU64,
    started: Instant,
    loops: CancellationToken,
    tasks: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are a few field updates; a panic leaves them whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The node type as the firmware names it in `node_hello` (canonical list).
pub fn node_type(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Ph => "ph",
        NodeKind::Ec => "ec",
        NodeKind::Climate => "climate",
        NodeKind::Irrigation => "irrig",
        NodeKind::Light => "light",
    }
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
        lock(&self.inner.current).as_ref().map(|c| c.url.clone())
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
    fn namespace(&self) -> Namespace {
        namespace_of(lock(&self.config).as_ref(), &self.hardware_id)
    }

    fn secret(&self) -> String {
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

    fn topic(&self, kind: TopicKind) -> String {
        let ns = self.namespace();
        node_topic(&ns.gh, &ns.zone, &ns.node, kind)
    }

    fn channel_topic(&self, channel: &str, kind: TopicKind) -> String {
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
        if let Some(mqtt) = lock(&self.config)
            .as_ref()
            .and_then(NodeConfig::mqtt_target)
        {
            // A config's own credentials win, as the node stores them.
            if let Some(user) = mqtt.user {
                config.username = Some(user);
                config.password = mqtt.pass.map(SecretString::from);
            }
            if let Some(k) = mqtt.keepalive.filter(|k| *k > 0) {
                config.keep_alive = Duration::from_secs(u64::from(k));
            }
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
        let (tx, rx) = mpsc::channel(256);
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
        let stagger = |period: Duration| {
            let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
            Instant::now() + Duration::from_millis(rand::random_range(0..ms))
        };
        let mut telemetry = tokio::time::interval_at(
            stagger(self.ctx.telemetry_interval),
            self.ctx.telemetry_interval,
        );
        telemetry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval_at(
            stagger(self.ctx.heartbeat_interval),
            self.ctx.heartbeat_interval,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
                        return Next::Stop;
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
                    let Some(message) = message else { return Next::Stop };
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
        let here = lock(&self.current)
            .as_ref()
            .map(|c| c.url.clone())
            .unwrap_or_default();
        let old_ns = self.namespace();
        let old_login = current
            .as_ref()
            .and_then(NodeConfig::mqtt_target)
            .map(|m| (m.user, m.pass));
        let target = broker_url(&config).unwrap_or_else(|| here.clone());
        let login = config.mqtt_target().map(|m| (m.user, m.pass));
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

    fn on_command(self: &Arc<Self>, channel: String, payload: &[u8]) {
        let Ok(Value::Object(command)) = serde_json::from_slice::<Value>(payload) else {
            metrics::counter!(m::COMMANDS_RECEIVED, "result" => "undecodable").increment(1);
            return;
        };
        let text = |k: &str| {
            command
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let Some(cmd_id) = text("cmd_id").map(str::to_owned) else {
            // Nothing to answer with.
            metrics::counter!(m::COMMANDS_RECEIVED, "result" => "undecodable").increment(1);
            return;
        };
        let Some(cmd) = text("cmd").map(str::to_owned) else {
            return self.reply_error(
                channel,
                cmd_id,
                "invalid_command_format",
                "Command must include non-empty cmd and cmd_id",
            );
        };
        let now = lock(&self.clock).now_secs();
        if let Err(r) = signature::check(&command, self.secret().as_bytes(), now) {
            debug!(hardware_id = %self.hardware_id, %cmd_id, code = r.error_code(), "Command refused.");
            return self.refuse(channel, cmd_id, r);
        }
        match lock(&self.recent).check_in(&cmd_id) {
            Seen::New => {}
            Seen::Again(last) => {
                metrics::counter!(m::COMMANDS_RECEIVED, "result" => "duplicate").increment(1);
                if let Some(last) = last {
                    self.spawn(channel, vec![(Duration::ZERO, last)], false);
                }
                return;
            }
        }
        let params = match command.get("params") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => {
                return self.reply_error(
                    channel,
                    cmd_id,
                    "invalid_params_format",
                    "params must be a JSON object",
                );
            }
        };
        let Some(spec) = self.channel(&channel) else {
            let r = Rejection::new(
                "unknown_channel",
                format!("node has no channel `{channel}`"),
            );
            return self.reply_invalid(channel, cmd_id, r);
        };
        match parse_action(&spec, &cmd, &params) {
            Err(r) => self.reply_invalid(channel, cmd_id, r),
            Ok(action) => self.execute(channel, cmd_id, spec, action),
        }
    }

    /// A channel the node runs: in its config when it has one, and on its hardware.
    fn channel(&self, name: &str) -> Option<ChannelSpec> {
        let configured = lock(&self.config)
            .as_ref()
            .is_none_or(|c| c.channels.iter().any(|ch| ch.name == name));
        configured
            .then(|| self.hardware.channel(name).copied())
            .flatten()
    }

    fn execute(
        self: &Arc<Self>,
        channel: String,
        cmd_id: String,
        spec: ChannelSpec,
        action: Action,
    ) {
        self.executed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "done").increment(1);
        let mut physics = lock(&self.physics);
        physics.apply(self.hardware.kind, spec.channel, action);
        let wait = match action {
            Action::RunPump { duration_ms } => {
                Duration::from_millis(duration_ms).min(MAX_DONE_WAIT)
            }
            _ => Duration::ZERO,
        };
        let details = match (action, spec.channel_type, spec.metric_type) {
            (Action::ReadNow | Action::Calibrate, ChannelType::Sensor, Some(metric)) => {
                let mut d = Map::new();
                d.insert("value".into(), json!(physics.reading(metric)));
                Some(d)
            }
            _ => None,
        };
        drop(physics);
        let ack = response(&cmd_id, ResponseStatus::Ack);
        let mut done = response(&cmd_id, ResponseStatus::Done);
        done.details = details;
        self.spawn(
            channel,
            vec![(Duration::ZERO, ack), (wait, done)],
            matches!(action, Action::ReadNow | Action::Calibrate),
        );
    }

    fn refuse(self: &Arc<Self>, channel: String, cmd_id: String, r: HmacRejection) {
        self.reply_error(channel, cmd_id, r.error_code(), r.error_message());
    }

    fn reply_error(self: &Arc<Self>, channel: String, cmd_id: String, code: &str, message: &str) {
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "error").increment(1);
        let mut r = response(&cmd_id, ResponseStatus::Error);
        r.error_code = Some(code.to_owned());
        r.error_message = Some(message.to_owned());
        self.spawn(channel, vec![(Duration::ZERO, r)], false);
    }

    fn reply_invalid(self: &Arc<Self>, channel: String, cmd_id: String, rejection: Rejection) {
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "invalid").increment(1);
        let mut r = response(&cmd_id, ResponseStatus::Invalid);
        r.error_code = Some(rejection.code.to_owned());
        r.error_message = Some(rejection.message);
        self.spawn(channel, vec![(Duration::ZERO, r)], false);
    }

    /// Sends `responses` in order (each after its wait) on the connection in
    /// use at that moment; with `read_first`, a fresh reading of the
    /// channel goes out before the last one.
    fn spawn(
        self: &Arc<Self>,
        channel: String,
        responses: Vec<(Duration, CommandResponse)>,
        read_first: bool,
    ) {
        if self.ctx.faults.drop_command() {
            metrics::counter!(m::RESPONSES_DROPPED).increment(1);
            return;
        }
        let node = self.clone();
        self.tasks.spawn(async move {
            let last = responses.len().saturating_sub(1);
            let run = async {
                for (i, (wait, mut r)) in responses.into_iter().enumerate() {
                    tokio::time::sleep(wait + node.ctx.faults.delay()).await;
                    let Some(connection) = node.connection() else {
                        return;
                    };
                    if read_first && i == last {
                        node.publish_telemetry(&connection, Some(&channel)).await;
                    }
                    r.ts = lock(&node.clock).stamp_ms();
                    let topic = node.channel_topic(&channel, TopicKind::CommandResponse);
                    let payload = serde_json::to_vec(&r).expect("response serialises");
                    for _ in 0..node.ctx.faults.copies() {
                        node.publish(
                            &connection,
                            "command_response",
                            &topic,
                            payload.clone(),
                            false,
                        )
                        .await;
                    }
                    lock(&node.recent).record(&r);
                }
            };
            tokio::select! {
                _ = node.loops.cancelled() => {}
                _ = run => {}
            }
        });
    }

    fn connection(&self) -> Option<MqttConnection> {
        lock(&self.current).as_ref().map(|c| c.connection.clone())
    }

    async fn publish(
        &self,
        connection: &MqttConnection,
        kind: &'static str,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> bool {
        match connection.publish(topic, payload, retain).await {
            Ok(()) => true,
            Err(e) => {
                metrics::counter!(m::PUBLISH_ERRORS, "kind" => kind).increment(1);
                debug!(hardware_id = %self.hardware_id, kind, error = %e, "Publish failed.");
                false
            }
        }
    }

    async fn request_time(&self, connection: &MqttConnection) {
        let uptime = lock(&self.clock).uptime_ms() / 1000;
        let payload = json!({"message_type": "time_request", "uptime": uptime});
        self.publish(
            connection,
            "time_request",
            TIME_REQUEST,
            payload.to_string().into_bytes(),
            false,
        )
        .await;
    }

    async fn publish_hello(&self, connection: &MqttConnection) {
        let mut capabilities: Vec<String> = Vec::new();
        for c in self.hardware.channels() {
            let name = match c.metric_type {
                Some(metric) => metric.as_str().to_ascii_lowercase(),
                None => c.channel.to_owned(),
            };
            if !capabilities.contains(&name) {
                capabilities.push(name);
            }
        }
        let mut extra = Map::new();
        extra.insert("message_type".into(), json!("node_hello"));
        let hello = NodeHello {
            hardware_id: self.hardware_id.clone(),
            node_uid: None,
            node_type: Some(node_type(self.hardware.kind).into()),
            fw_version: Some(FW_VERSION.into()),
            capabilities,
            extra,
        };
        let payload = serde_json::to_vec(&hello).expect("hello serialises");
        self.publish(connection, "node_hello", GLOBAL_NODE_HELLO, payload, false)
            .await;
    }

    async fn publish_status(&self, connection: &MqttConnection, state: NodeState) {
        let Some(ts) = lock(&self.clock).now_secs() else {
            return; // never before the time response
        };
        let payload = serde_json::to_vec(&Status { status: state, ts }).expect("status serialises");
        self.publish(
            connection,
            "status",
            &self.topic(TopicKind::Status),
            payload,
            true,
        )
        .await;
    }

    async fn publish_config_report(&self, connection: &MqttConnection) {
        let config = lock(&self.config).clone();
        let reported = match config {
            Some(c) if !super::config::is_temp(&c) => report(&c, FW_VERSION),
            _ => self.unbound_config(),
        };
        let payload = serde_json::to_vec(&reported).expect("config serialises");
        self.publish(
            connection,
            "config_report",
            &self.topic(TopicKind::ConfigReport),
            payload,
            false,
        )
        .await;
    }

    /// What an unbound node reports: its hardware, named by its hardware id,
    /// on the broker it is on.
    fn unbound_config(&self) -> NodeConfig {
        let url = lock(&self.current)
            .as_ref()
            .map(|c| c.url.clone())
            .unwrap_or_default();
        let mqtt = common::node_config::broker_section(&url)
            .unwrap_or_else(|_| json!({"configured": true}));
        let poll_ms = u64::try_from(self.ctx.telemetry_interval.as_millis()).unwrap_or(u64::MAX);
        let channels = self
            .hardware
            .channels()
            .iter()
            .map(|c| {
                let mut extra = Map::new();
                if c.metric_type.is_some() {
                    extra.insert("poll_interval_ms".into(), json!(poll_ms));
                }
                NodeConfigChannel {
                    name: c.channel.to_owned(),
                    kind: if c.channel_type == ChannelType::Sensor {
                        "SENSOR"
                    } else {
                        "ACTUATOR"
                    }
                    .into(),
                    metric: c.metric_type.map(|m| m.as_str().to_owned()),
                    actuator_type: (c.channel_type == ChannelType::Actuator)
                        .then(|| actuator_type(c.channel).to_owned()),
                    unit: c.unit.map(str::to_owned),
                    extra,
                }
            })
            .collect();
        NodeConfig {
            node_id: self.hardware_id.clone(),
            version: CONFIG_VERSION,
            node_type: node_type(self.hardware.kind).into(),
            gh_uid: common::topics::TEMP_GREENHOUSE.into(),
            zone_uid: common::topics::TEMP_ZONE.into(),
            channels,
            wifi: Some(json!({"configured": true})),
            mqtt,
            fw_version: Some(FW_VERSION.into()),
            node_secret: None,
            extra: Map::new(),
        }
    }

    async fn publish_heartbeat(&self, connection: &MqttConnection) {
        let heartbeat = Heartbeat {
            uptime: self.started.elapsed().as_secs(),
            free_heap: rand::random_range(96_000..=104_000),
            rssi: Some(rand::random_range(-80..=-40)),
            fw_version: Some(FW_VERSION.into()),
        };
        let payload = serde_json::to_vec(&heartbeat).expect("heartbeat serialises");
        self.publish(
            connection,
            "heartbeat",
            &self.topic(TopicKind::Heartbeat),
            payload,
            false,
        )
        .await;
    }

    /// The sensor channels it reports: its config's when it has one, else its hardware's.
    fn sensors(&self) -> Vec<(String, MetricType, Option<String>)> {
        match lock(&self.config).as_ref() {
            Some(c) => c
                .channels
                .iter()
                .filter(|ch| ch.kind.eq_ignore_ascii_case("SENSOR"))
                .filter_map(|ch| {
                    let metric = serde_json::from_value(json!(ch.metric.as_deref()?)).ok()?;
                    Some((ch.name.clone(), metric, ch.unit.clone()))
                })
                .collect(),
            None => self
                .hardware
                .channels()
                .iter()
                .filter_map(|c| {
                    Some((
                        c.channel.to_owned(),
                        c.metric_type?,
                        c.unit.map(str::to_owned),
                    ))
                })
                .collect(),
        }
    }

    /// One reading per sensor (or only `only`), once the clock is set.
    async fn publish_telemetry(&self, connection: &MqttConnection, only: Option<&str>) {
        let Some(ts) = lock(&self.clock).now_secs() else {
            return;
        };
        let messages: Vec<(String, Vec<u8>)> = {
            let physics = lock(&self.physics);
            self.sensors()
                .into_iter()
                .filter(|(name, _, _)| only.is_none_or(|o| o == name))
                .map(|(name, metric, unit)| {
                    let t = reading(&physics, metric, unit.as_deref(), ts);
                    let payload = serde_json::to_vec(&t).expect("telemetry serialises");
                    (self.channel_topic(&name, TopicKind::Telemetry), payload)
                })
                .collect()
        };
        let sent =
            futures::future::join_all(messages.into_iter().map(|(topic, payload)| async move {
                self.publish(connection, "telemetry", &topic, payload, false)
                    .await
            }))
            .await;
        let ok = sent.into_iter().filter(|s| *s).count();
        metrics::counter!(m::TELEMETRY_PUBLISHED).increment(ok as u64);
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

fn response(cmd_id: &str, status: ResponseStatus) -> CommandResponse {
    CommandResponse {
        cmd_id: cmd_id.to_owned(),
        status,
        ts: 0,
        details: None,
        error_code: None,
        error_message: None,
        message: None,
    }
}

/// The actuator type the firmware would declare for a channel.
fn actuator_type(channel: &str) -> &'static str {
    if channel.contains("pump") {
        "PUMP"
    } else if channel.contains("light") {
        "LED"
    } else {
        "RELAY"
    }
}
