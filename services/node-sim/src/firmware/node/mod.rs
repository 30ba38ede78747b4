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
//!
//! This file holds the node's state and its handle ([`FirmwareNode`]);
//! connecting and leaving brokers is in [`connection`], what one connection
//! serves (time, configs, commands, the uplink's ticks) in [`session`].

mod connection;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::mqtt::MqttConnection;
use proto::payloads::{NodeConfig, NodeState};
use proto::topics::{TopicKind, channel_topic, node_topic};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use super::FirmwareContext;
use super::clock::Clock;
use super::config::{ConfigStore, Namespace, hardware_id, namespace_of};
use crate::layout::NodeSpec;
use crate::physics::{Physics, current_hour};
use crate::recent::{RECENT_CAPACITY, RecentCommands};
use connection::leave;

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

    pub(super) fn connection(&self) -> Option<MqttConnection> {
        lock(&self.current).as_ref().map(|c| c.connection.clone())
    }
}
