//! One connection's session of a firmware-mode node: the connect sequence
//! (time request, hello while unbound, then status and config report once
//! the clock is set), the messages it receives (time, NodeConfig, commands)
//! and the uplink's ticks, until the node stops or must reconnect.

use std::sync::Arc;

use common::mqtt::{Inbound, MqttConnection};
use common::placement::node_config;
use proto::payloads::{NodeState, TimeResponse};
use proto::topics::{NodeTopic, TIME_RESPONSE, TopicKind};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::{Inner, Next, lock};
use crate::firmware::config::{Decision, broker_url, decide};
use crate::physics::current_hour;

impl Inner {
    /// Serves one connection until the node stops or must reconnect.
    pub(super) async fn session(
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
}
