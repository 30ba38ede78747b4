//! What a firmware-mode node publishes: its time requests and hello, and,
//! only once its clock is set, status, config report, heartbeats and
//! telemetry (the readings of [`crate::node::reading`], shared with classic
//! mode), each on the namespace it has at that moment.

use common::mqtt::MqttConnection;
use proto::payloads::{
    Heartbeat, MetricType, NodeConfig, NodeConfigChannel, NodeHello, NodeState, Status,
};
use proto::topics::{GLOBAL_NODE_HELLO, TIME_REQUEST, TopicKind};
use serde::Serialize;
use serde_json::{Map, json};
use tracing::debug;

use super::config::report;
use super::node::{FW_VERSION, Inner, lock};
use crate::layout::{ChannelType, NodeKind};
use crate::metrics as m;
use crate::node::reading;

/// The NodeConfig format a node without a pushed config reports.
const CONFIG_VERSION: u32 = 3;

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

impl Inner {
    pub(super) async fn publish(
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

    /// Publishes `message` on the node's own `kind` topic, in the namespace
    /// it has now.
    async fn publish_node(
        &self,
        connection: &MqttConnection,
        kind: TopicKind,
        message: &impl Serialize,
        retain: bool,
    ) {
        let payload = serde_json::to_vec(message).expect("a payload serialises");
        self.publish(
            connection,
            kind.as_str(),
            &self.topic(kind),
            payload,
            retain,
        )
        .await;
    }

    pub(super) async fn request_time(&self, connection: &MqttConnection) {
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

    pub(super) async fn publish_hello(&self, connection: &MqttConnection) {
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

    pub(super) async fn publish_status(&self, connection: &MqttConnection, state: NodeState) {
        let Some(ts) = lock(&self.clock).now_secs() else {
            return; // never before the time response
        };
        let status = Status { status: state, ts };
        self.publish_node(connection, TopicKind::Status, &status, true)
            .await;
    }

    pub(super) async fn publish_config_report(&self, connection: &MqttConnection) {
        let config = lock(&self.config).clone();
        let reported = match config {
            Some(c) if !super::config::is_temp(&c) => report(&c, FW_VERSION),
            _ => self.unbound_config(),
        };
        self.publish_node(connection, TopicKind::ConfigReport, &reported, false)
            .await;
    }

    /// What an unbound node reports: its hardware, named by its hardware id,
    /// on the broker it is on.
    pub(super) fn unbound_config(&self) -> NodeConfig {
        let url = self.current_url().unwrap_or_default();
        let mqtt = common::placement::node_config::broker_section(&url)
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
            gh_uid: proto::topics::TEMP_GREENHOUSE.into(),
            zone_uid: proto::topics::TEMP_ZONE.into(),
            channels,
            wifi: Some(json!({"configured": true})),
            mqtt,
            fw_version: Some(FW_VERSION.into()),
            node_secret: None,
            extra: Map::new(),
        }
    }

    pub(super) async fn publish_heartbeat(&self, connection: &MqttConnection) {
        let heartbeat = Heartbeat {
            uptime: self.started.elapsed().as_secs(),
            free_heap: rand::random_range(96_000..=104_000),
            rssi: Some(rand::random_range(-80..=-40)),
            fw_version: Some(FW_VERSION.into()),
        };
        self.publish_node(connection, TopicKind::Heartbeat, &heartbeat, false)
            .await;
    }

    /// The sensor channels it reports: its config's when it has one, else its hardware's.
    pub(super) fn sensors(&self) -> Vec<(String, MetricType, Option<String>)> {
        match lock(&self.config).as_ref() {
            Some(c) => c
                .channels
                .iter()
                .filter(|ch| ch.kind.eq_ignore_ascii_case("SENSOR"))
                .filter_map(|ch| {
                    // The wire names are upper case; a config may not be.
                    let metric = ch.metric.as_deref()?.to_ascii_uppercase();
                    let metric = serde_json::from_value(json!(metric)).ok()?;
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
    pub(super) async fn publish_telemetry(&self, connection: &MqttConnection, only: Option<&str>) {
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
