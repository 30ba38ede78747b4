//! One simulated node: its own broker link (with the `lwt` last will, the
//! stored broker, fallbacks and offline buffer of [`crate::link`]),
//! retained ONLINE status on every (re)connect, telemetry and heartbeats on
//! their intervals, and the signed commands it receives, answered the way the
//! hydro2.0 firmware answers them (contract section 3).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::LastWill;
use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use common::settings::Settings;
use proto::payloads::{
    Command, CommandResponse, Heartbeat, LWT_PAYLOAD, MetricType, NodeState, ResponseStatus,
    Status, Telemetry,
};
use proto::signing;
use proto::topics::{NodeTopic, TopicKind, channel_topic, config_update_topic, node_topic};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::command::{Action, Rejection, parse_action};
use crate::faults::Faults;
use crate::layout::{ChannelSpec, ChannelType, NodeSpec};
use crate::link::{LinkConfig, NodeLink};
use crate::metrics as m;
use crate::physics::{Physics, current_hour};
use crate::recent::{RecentCommands, Seen};
use crate::seed::NodeCredentials;

/// A node refuses a command whose `ts` is this far from its clock (contract).
pub const MAX_CLOCK_SKEW_SECS: i64 = 10;
/// The longest a `run_pump` keeps its DONE back; longer runs report DONE
/// after this, so a 10-minute run does not hold a test or a timeout hostage.
pub const MAX_DONE_WAIT: Duration = Duration::from_secs(10);
/// Commands waiting for the node's dispatcher; beyond this the broker
/// connection is slowed down (backpressure), not the node's memory grown.
const INBOX_CAPACITY: usize = 1024;
/// QoS 1 publishes one node keeps in flight; more wait their turn.
const NODE_MAX_INFLIGHT: u16 = 32;
/// How long a clean stop waits for tasks and for the broker to see DISCONNECT.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Acknowledged `ts` kept per channel to spot a repeated key: more than the
/// readings one channel can have in flight at once.
const ACKED_TS_KEPT: usize = 16;

/// What every node shares: where to connect, how to sign, how often to talk.
#[derive(Debug)]
pub struct NodeContext {
    pub greenhouse: String,
    /// The brokers; node `i` (layout order) starts on entry `i % n` and
    /// falls back to the others in order. Never empty.
    pub broker_urls: Vec<String>,
    /// How long a node keeps trying its broker before its fallbacks.
    pub fallback_after: Duration,
    /// Credentials, publish timeout and the node secret.
    pub settings: Settings,
    pub faults: Arc<Faults>,
    pub telemetry_interval: Duration,
    pub heartbeat_interval: Duration,
    /// `SIM_TCP_NODELAY`.
    pub tcp_nodelay: bool,
    /// Each seeded node's own secret and broker password, by uid. A node
    /// found here logs in as itself (username = uid) and checks commands
    /// with its own secret; any other uses `MQTT_USER` / `MQTT_PASS` and
    /// `NODE_DEFAULT_SECRET` (a simulator without a database).
    pub credentials: HashMap<String, NodeCredentials>,
}

/// A running simulated node; cheap to clone.
#[derive(Clone)]
pub struct SimNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("uid", &self.inner.spec.uid)
            .finish()
    }
}

struct Inner {
    spec: NodeSpec,
    ctx: Arc<NodeContext>,
    link: Arc<NodeLink>,
    physics: Mutex<Physics>,
    recent: Mutex<RecentCommands>,
    executed: AtomicU64,
    started: Instant,
    /// Stops the node's loops and command tasks.
    loops: CancellationToken,
    tasks: TaskTracker,
    undecodable_logged: AtomicU64,
    /// The `ts` of the latest telemetry the broker acknowledged, per channel
    /// (the last [`ACKED_TS_KEPT`]): a reading with the same (node, channel,
    /// metric, ts) key is stored once. Several, because readings are sent
    /// concurrently and may be acknowledged out of order.
    acked_ts: Mutex<BTreeMap<&'static str, VecDeque<i64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few field updates; a panic cannot leave
    // the data half-written in a way that matters to a simulator.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Inner {
    /// The key the node's commands are signed with: its own secret, else
    /// `NODE_DEFAULT_SECRET`.
    fn secret(&self) -> &SecretString {
        node_secret(&self.ctx, &self.spec.uid)
    }
}

/// Node `uid`'s signing key: its own secret, else `NODE_DEFAULT_SECRET`.
fn node_secret<'a>(ctx: &'a NodeContext, uid: &str) -> &'a SecretString {
    ctx.credentials
        .get(uid)
        .map(|c| &c.secret)
        .unwrap_or(&ctx.settings.node_default_secret)
}

impl SimNode {
    /// The key the node's commands (and moves) are signed with.
    pub fn secret(&self) -> &SecretString {
        self.inner.secret()
    }

    /// Connects the node and starts its loops. It keeps reconnecting on its
    /// own until [`SimNode::stop`] or [`SimNode::abort`].
    pub fn start(spec: NodeSpec, ctx: Arc<NodeContext>) -> Result<SimNode, MqttError> {
        let lwt_topic = node_topic(&ctx.greenhouse, &spec.zone, &spec.uid, TopicKind::Lwt);
        let (url, fallback) = crate::settings::brokers_for(&ctx.broker_urls, spec.index);
        let mut config = MqttConfig::new(
            // One broker label per node: `mqtt_connected{broker=<uid>}` then
            // shows each node's link.
            &spec.uid,
            url,
            &format!("node-sim-{}", spec.uid),
        )
        .with_settings(&ctx.settings);
        if let Some(password) = ctx
            .credentials
            .get(&spec.uid)
            .and_then(|c| c.mqtt_password.clone())
        {
            config.username = Some(spec.uid.clone());
            config.password = Some(password);
        }
        // A node has a few readings and responses in flight at most; the
        // default window would cost megabytes per node (see the field).
        config.max_inflight = Some(NODE_MAX_INFLIGHT);
        config.nodelay = ctx.tcp_nodelay;
        config.last_will = Some(LastWill::new(
            lwt_topic,
            LWT_PAYLOAD,
            QoS::AtLeastOnce,
            true,
            None,
        ));
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let commands = format!(
            "hydro/{}/{}/{}/+/command",
            ctx.greenhouse, spec.zone, spec.uid
        );
        let node_link = NodeLink::start(
            &spec.uid,
            LinkConfig {
                template: config,
                commands_filter: commands,
                config_topic: config_update_topic(&spec.uid),
                status_topic: node_topic(&ctx.greenhouse, &spec.zone, &spec.uid, TopicKind::Status),
                fallback_after: ctx.fallback_after,
                // The key its commands and moves are checked with: its own
                // secret, else the default (see `Inner::secret`).
                secret: node_secret(&ctx, &spec.uid)
                    .expose_secret()
                    .as_bytes()
                    .to_vec(),
            },
            url,
            fallback,
            tx,
        )?;
        let seed = rand::random::<u64>();
        let inner = Arc::new(Inner {
            physics: Mutex::new(Physics::new(seed, current_hour())),
            recent: Mutex::new(RecentCommands::new(crate::recent::RECENT_CAPACITY)),
            executed: AtomicU64::new(0),
            started: Instant::now(),
            loops: CancellationToken::new(),
            tasks: TaskTracker::new(),
            undecodable_logged: AtomicU64::new(0),
            acked_ts: Mutex::new(BTreeMap::new()),
            spec,
            ctx,
            link: node_link,
        });
        inner.tasks.spawn(inner.clone().run_uplink());
        inner.tasks.spawn(inner.clone().run_commands(rx));
        Ok(SimNode { inner })
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.inner.spec
    }

    pub fn uid(&self) -> &str {
        &self.inner.spec.uid
    }

    /// The node's broker connection now.
    pub fn connection(&self) -> MqttConnection {
        self.inner.link.connection()
    }

    /// The node's broker link (stored broker, fallbacks, offline buffer).
    pub fn link(&self) -> &Arc<NodeLink> {
        &self.inner.link
    }

    pub fn is_connected(&self) -> bool {
        self.inner.link.is_connected()
    }

    /// Commands executed (not counting INVALID ones and redeliveries).
    pub fn commands_executed(&self) -> u64 {
        self.inner.executed.load(Ordering::Relaxed)
    }

    /// What each sensor channel reads now.
    pub fn readings(&self) -> BTreeMap<&'static str, f64> {
        let physics = lock(&self.inner.physics);
        sensors(&self.inner.spec)
            .map(|(c, metric)| (c.channel, physics.reading(metric)))
            .collect()
    }

    /// Stops cleanly: loops end, a retained OFFLINE status is published and
    /// the connection closes with DISCONNECT, so the broker keeps the will.
    pub async fn stop(&self) {
        let inner = &self.inner;
        inner.loops.cancel();
        inner.tasks.close();
        let _ = tokio::time::timeout(STOP_GRACE, inner.tasks.wait()).await;
        inner.link.shutdown(STOP_GRACE).await;
    }

    /// Kills the node abruptly, as a power cut would: no DISCONNECT, so the
    /// broker publishes the node's last will (`lwt` = `offline`).
    pub fn abort(&self) {
        self.inner.loops.cancel();
        self.inner.link.abort();
    }
}

/// The sensor channels of a node with their metric.
fn sensors(spec: &NodeSpec) -> impl Iterator<Item = (&ChannelSpec, MetricType)> {
    spec.channels()
        .iter()
        .filter_map(|c| c.metric_type.map(|m| (c, m)))
}

/// One reading of `metric` at `ts`, as every simulated node reports it
/// (classic and firmware mode alike).
pub(crate) fn reading(
    physics: &Physics,
    metric: MetricType,
    unit: Option<&str>,
    ts: i64,
) -> Telemetry {
    Telemetry {
        metric_type: metric,
        value: physics.reading(metric),
        ts,
        unit: unit.map(str::to_owned),
        raw: None,
        stub: None,
        stable: matches!(metric, MetricType::Ph | MetricType::Ec).then_some(true),
        flow_active: (metric == MetricType::FlowRate).then(|| physics.pumping()),
        corrections_allowed: None,
        tds: None,
        health: None,
    }
}

/// What a command comes to, decided before anything is sent.
enum Plan {
    /// Answer INVALID with this reason.
    Invalid(Rejection),
    /// Answer ACK, then DONE (after `wait`), with `details` on DONE.
    Execute {
        wait: Duration,
        details: Option<Map<String, Value>>,
    },
    /// A redelivery: send the last response again.
    Repeat(CommandResponse),
}

impl Inner {
    fn topic(&self, channel: &str, kind: TopicKind) -> String {
        channel_topic(
            &self.ctx.greenhouse,
            &self.spec.zone,
            &self.spec.uid,
            channel,
            kind,
        )
    }

    async fn publish(
        &self,
        kind: &'static str,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> bool {
        match self.link.publish(topic, payload, retain).await {
            Ok(()) => true,
            Err(e) => {
                metrics::counter!(m::PUBLISH_ERRORS, "kind" => kind).increment(1);
                debug!(node = %self.spec.uid, kind, error = %e, "Publish failed.");
                false
            }
        }
    }

    async fn publish_status(&self, state: NodeState) {
        let topic = node_topic(
            &self.ctx.greenhouse,
            &self.spec.zone,
            &self.spec.uid,
            TopicKind::Status,
        );
        let status = Status {
            status: state,
            ts: now_secs(),
        };
        let payload = serde_json::to_vec(&status).expect("status serialises");
        self.publish("status", &topic, payload, true).await;
    }

    /// Status on every (re)connect, telemetry and heartbeats on their
    /// intervals, each node starting at a random point of its period so that
    /// a fleet does not publish in lockstep.
    async fn run_uplink(self: Arc<Self>) {
        let mut connected = self.link.connected_watch();
        let mut telemetry = staggered_interval(self.ctx.telemetry_interval);
        let mut heartbeat = staggered_interval(self.ctx.heartbeat_interval);
        let mut last_step = Instant::now();
        if *connected.borrow_and_update() {
            self.spawn_status_online();
        }
        loop {
            tokio::select! {
                _ = self.loops.cancelled() => break,
                changed = connected.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if *connected.borrow_and_update() {
                        info!(node = %self.spec.uid, "Node online.");
                        self.spawn_status_online();
                    }
                }
                _ = telemetry.tick() => {
                    let now = Instant::now();
                    lock(&self.physics).step((now - last_step).as_secs_f64(), current_hour());
                    last_step = now;
                    // Sent beside the loop, as the firmware's MQTT client
                    // queues a publish and goes on: a publish waiting on a
                    // dying connection must not stop the next readings
                    // (cut off, they go to the link's offline buffer).
                    let node = self.clone();
                    self.tasks
                        .spawn(async move { node.publish_telemetry(None).await });
                }
                _ = heartbeat.tick() => {
                    if self.link.is_connected() {
                        let node = self.clone();
                        self.tasks.spawn(async move { node.publish_heartbeat().await });
                    }
                }
            }
        }
    }

    /// Publishes ONLINE beside the uplink loop: a connection that dies right
    /// after it came up holds the publish until its timeout, and the loop
    /// must go on making readings meanwhile (into the offline buffer).
    fn spawn_status_online(self: &Arc<Self>) {
        let node = self.clone();
        self.tasks
            .spawn(async move { node.publish_status(NodeState::Online).await });
    }

    /// One reading per sensor channel (or only `only`), published together.
    async fn publish_telemetry(&self, only: Option<&str>) {
        let ts = now_secs();
        let messages: Vec<(&'static str, String, Vec<u8>)> = {
            let physics = lock(&self.physics);
            sensors(&self.spec)
                .filter(|(c, _)| only.is_none_or(|o| o == c.channel))
                .map(|(c, metric)| {
                    let t = reading(&physics, metric, c.unit, ts);
                    let payload = serde_json::to_vec(&t).expect("telemetry serialises");
                    (
                        c.channel,
                        self.topic(c.channel, TopicKind::Telemetry),
                        payload,
                    )
                })
                .collect()
        };
        // All channels at once: one node's readings wait for one round trip
        // to the broker, not one per channel.
        let sent = futures::future::join_all(messages.into_iter().map(
            |(channel, topic, payload)| async move {
                self.link
                    .send_telemetry(topic, payload)
                    .await
                    .then_some(channel)
            },
        ))
        .await;
        let mut ok = 0u64;
        let mut repeated = 0u64;
        {
            let mut acked = lock(&self.acked_ts);
            for channel in sent.into_iter().flatten() {
                ok += 1;
                let seen = acked.entry(channel).or_default();
                if seen.contains(&ts) {
                    repeated += 1;
                } else {
                    seen.push_back(ts);
                    if seen.len() > ACKED_TS_KEPT {
                        seen.pop_front();
                    }
                }
            }
        }
        metrics::counter!(m::TELEMETRY_PUBLISHED).increment(ok);
        if repeated > 0 {
            metrics::counter!(m::TELEMETRY_REPEATED_KEYS).increment(repeated);
        }
    }

    async fn publish_heartbeat(&self) {
        let topic = node_topic(
            &self.ctx.greenhouse,
            &self.spec.zone,
            &self.spec.uid,
            TopicKind::Heartbeat,
        );
        let heartbeat = Heartbeat {
            uptime: self.started.elapsed().as_secs(),
            free_heap: rand::random_range(96_000..=104_000),
            rssi: Some(rand::random_range(-80..=-40)),
            fw_version: Some(env!("CARGO_PKG_VERSION").into()),
        };
        let payload = serde_json::to_vec(&heartbeat).expect("heartbeat serialises");
        self.publish("heartbeat", &topic, payload, false).await;
    }

    /// Takes commands one at a time (cheap checks only) and hands each
    /// one's responses to a task of its own, so a long pump run never holds
    /// up the next command.
    async fn run_commands(self: Arc<Self>, mut inbox: mpsc::Receiver<Inbound>) {
        loop {
            let message = tokio::select! {
                _ = self.loops.cancelled() => break,
                message = inbox.recv() => match message {
                    Some(m) => m,
                    None => break,
                },
            };
            self.handle(message);
        }
    }

    fn handle(self: &Arc<Self>, message: Inbound) {
        let channel = match NodeTopic::parse(&message.topic) {
            Ok(NodeTopic {
                channel: Some(channel),
                kind: TopicKind::Command,
                ..
            }) => channel,
            _ => return self.undecodable(&message, "not a command topic"),
        };
        let command = match Command::decode(&message.payload) {
            Ok(c) => c,
            Err(e) => {
                let cmd_id = serde_json::from_slice::<Value>(&message.payload)
                    .ok()
                    .and_then(|v| v.get("cmd_id")?.as_str().map(str::to_owned))
                    .filter(|id| !id.is_empty());
                let Some(cmd_id) = cmd_id else {
                    return self.undecodable(&message, &e.to_string());
                };
                let plan = Plan::Invalid(Rejection::new("bad_format", e.to_string()));
                return self.answer(channel, cmd_id, plan);
            }
        };
        if !signing::verify(self.secret().expose_secret().as_bytes(), &command) {
            let plan = Plan::Invalid(Rejection::new(
                "bad_signature",
                "sig does not match the command signed with the node secret",
            ));
            return self.answer(channel, command.cmd_id, plan);
        }
        let skew = (now_secs() - command.ts).abs();
        if skew >= MAX_CLOCK_SKEW_SECS {
            let plan = Plan::Invalid(Rejection::new(
                "stale_command",
                format!("ts is {skew} s away from the node clock (limit {MAX_CLOCK_SKEW_SECS} s)"),
            ));
            return self.answer(channel, command.cmd_id, plan);
        }
        // Only an authentic, fresh command is remembered: a forged one must
        // not be able to block a later genuine command with the same id.
        match lock(&self.recent).check_in(&command.cmd_id) {
            Seen::New => {}
            Seen::Again(last) => {
                metrics::counter!(m::COMMANDS_RECEIVED, "result" => "duplicate").increment(1);
                debug!(node = %self.spec.uid, cmd_id = %command.cmd_id, "Redelivered command; not executed again.");
                if let Some(last) = last {
                    self.spawn_responses(channel, Plan::Repeat(last), command.cmd_id);
                }
                return;
            }
        }
        let plan = match self.spec.channel(&channel) {
            None => Plan::Invalid(Rejection::new(
                "unknown_channel",
                format!("node {} has no channel `{channel}`", self.spec.uid),
            )),
            Some(spec) => match parse_action(spec, &command.cmd, &command.params) {
                Err(r) => Plan::Invalid(r),
                Ok(action) => self.execute(spec, action),
            },
        };
        self.answer(channel, command.cmd_id, plan);
    }

    /// Applies the action and says how to report it.
    fn execute(&self, channel: &ChannelSpec, action: Action) -> Plan {
        self.executed.fetch_add(1, Ordering::Relaxed);
        let mut physics = lock(&self.physics);
        physics.apply(self.spec.kind, channel.channel, action);
        let wait = match action {
            Action::RunPump { duration_ms } => {
                Duration::from_millis(duration_ms).min(MAX_DONE_WAIT)
            }
            _ => Duration::ZERO,
        };
        let details = match (action, channel.channel_type, channel.metric_type) {
            (Action::ReadNow | Action::Calibrate, ChannelType::Sensor, Some(metric)) => {
                let mut d = Map::new();
                d.insert("value".into(), json!(physics.reading(metric)));
                Some(d)
            }
            _ => None,
        };
        Plan::Execute { wait, details }
    }

    fn answer(self: &Arc<Self>, channel: String, cmd_id: String, plan: Plan) {
        let result = match &plan {
            Plan::Invalid(r) => {
                debug!(node = %self.spec.uid, %cmd_id, code = r.code, "Command refused.");
                "invalid"
            }
            _ => "done",
        };
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => result).increment(1);
        self.spawn_responses(channel, plan, cmd_id);
    }

    fn spawn_responses(self: &Arc<Self>, channel: String, plan: Plan, cmd_id: String) {
        if self.ctx.faults.drop_command() {
            metrics::counter!(m::RESPONSES_DROPPED).increment(1);
            return;
        }
        let node = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = node.loops.cancelled() => {}
                _ = node.send_responses(&channel, cmd_id, plan) => {}
            }
        });
    }

    async fn send_responses(&self, channel: &str, cmd_id: String, plan: Plan) {
        let response = |status, details: Option<Map<String, Value>>| CommandResponse {
            cmd_id: cmd_id.clone(),
            status,
            ts: 0,
            details,
            error_code: None,
            error_message: None,
            message: None,
        };
        match plan {
            Plan::Invalid(r) => {
                let mut invalid = response(ResponseStatus::Invalid, None);
                invalid.error_code = Some(r.code.to_owned());
                invalid.error_message = Some(r.message);
                self.respond(channel, invalid).await;
            }
            Plan::Repeat(last) => self.respond(channel, last).await,
            Plan::Execute { wait, details } => {
                self.respond(channel, response(ResponseStatus::Ack, None))
                    .await;
                tokio::time::sleep(wait).await;
                if details.is_some() {
                    // read_now and calibrate also report the fresh reading.
                    self.publish_telemetry(Some(channel)).await;
                }
                self.respond(channel, response(ResponseStatus::Done, details))
                    .await;
            }
        }
    }

    /// Sends one response after the configured delay, twice if a fault says so.
    async fn respond(&self, channel: &str, mut response: CommandResponse) {
        let delay = self.ctx.faults.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        response.ts = now_millis();
        let topic = self.topic(channel, TopicKind::CommandResponse);
        let payload = serde_json::to_vec(&response).expect("response serialises");
        for _ in 0..self.ctx.faults.copies() {
            self.publish("command_response", &topic, payload.clone(), false)
                .await;
        }
        lock(&self.recent).record(&response);
    }

    /// Counts and logs (at most every 10 s per node) a message nobody can answer.
    fn undecodable(&self, message: &Inbound, problem: &str) {
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "undecodable").increment(1);
        let now = u64::try_from(now_secs()).unwrap_or(0);
        let last = self.undecodable_logged.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .undecodable_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(node = %self.spec.uid, topic = %message.topic, problem, "Undecodable command ignored.");
        }
    }
}

/// A ticker of `period` whose first tick falls at a random point of its
/// first period, so that a fleet of nodes does not publish in lockstep; a
/// late tick is not made up for.
pub(crate) fn staggered_interval(period: Duration) -> tokio::time::Interval {
    let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let first = Instant::now() + Duration::from_millis(rand::random_range(0..ms));
    let mut ticker = tokio::time::interval_at(first, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}
