//! One simulated node: its own broker link (with the `lwt` last will, the
//! stored broker, fallbacks and offline buffer of [`crate::link`]),
//! retained ONLINE status on every (re)connect, telemetry and heartbeats on
//! their intervals, and the signed commands it receives, answered the way the
//! hydro2.0 firmware answers them (contract section 3).
//!
//! This file holds the node's state and its handle ([`SimNode`]); what it
//! publishes is in [`uplink`], how it answers commands in [`commands`].

mod commands;
mod uplink;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::LastWill;
use common::QoS;
use common::mqtt::{MqttConfig, MqttConnection, MqttError};
use common::settings::Settings;
use proto::payloads::{LWT_PAYLOAD, MetricType};
use proto::topics::{TopicKind, config_update_topic, node_topic};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::faults::Faults;
use crate::layout::{ChannelSpec, NodeSpec};
use crate::link::{LinkConfig, NodeLink};
use crate::physics::{Physics, current_hour};
use crate::recent::RecentCommands;
use crate::seed::NodeCredentials;

pub(crate) use uplink::{reading, staggered_interval};

/// A node refuses a command whose `ts` is this far from its clock (contract).
pub const MAX_CLOCK_SKEW_SECS: i64 = 10;
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
