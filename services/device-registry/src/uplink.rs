//! The inbox: every message the registry subscribed to, from every broker.
//! A hello registers or refreshes its node; temp-namespace traffic from an
//! unbound node registers it, is counted and keeps its latest readings (it
//! is not an error, never dead-lettered); a `config_report` goes to
//! [`crate::reports`]. A bad payload is counted and logged with a rate
//! limit; nothing here stops the loop.

use std::time::{Duration, Instant};

use common::metrics as m;
use common::mqtt::Inbound;
use common::store::nodes;
use proto::payloads::{NodeHello, Telemetry};
use proto::topics::{NodeTopic, Topic, TopicKind};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::registration::{self, Registered, Sighting};
use crate::throttle::Throttle;
use crate::{lifecycle, reports};

/// One log line per reason and node at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The hardware id firmware puts in temp topics when it has none.
const NO_HARDWARE_ID: &str = "unknown";

/// The inbox consumer and its throttles.
pub struct Uplink {
    pool: PgPool,
    writes: Throttle,
    logs: Throttle,
}

impl Uplink {
    /// `write_every`: the shortest interval between two writes for one
    /// unbound node and channel.
    pub fn new(pool: PgPool, write_every: Duration) -> Self {
        Uplink {
            pool,
            writes: Throttle::new(write_every),
            logs: Throttle::new(LOG_EVERY),
        }
    }

    /// Reads the inbox until `stop`.
    pub async fn run(mut self, mut inbox: mpsc::Receiver<Inbound>, stop: CancellationToken) {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = inbox.recv() => match m { Some(m) => m, None => return },
            };
            self.handle(&message).await;
        }
    }

    fn drop_message(
        &mut self,
        reason: &'static str,
        message: &Inbound,
        error: &dyn std::fmt::Display,
    ) {
        metrics::counter!(m::DEVICE_MESSAGES_DROPPED, "reason" => reason).increment(1);
        let key = format!("{reason}/{}", message.topic);
        if self.logs.allow(&key, Instant::now()) {
            warn!(topic = %message.topic, broker = %message.broker_id, reason, error = %error,
                "Message not used (further ones like it are counted, logged at most every 10 s).");
        }
    }

    /// Handles one message; never fails.
    pub async fn handle(&mut self, message: &Inbound) {
        let topic = match Topic::parse(&message.topic) {
            Ok(t) => t,
            Err(e) => return self.drop_message("bad_topic", message, &e),
        };
        match topic {
            Topic::GlobalNodeHello => self.hello(message, None).await,
            Topic::Node(t) if t.kind == TopicKind::NodeHello => {
                let hint = (!t.is_temp()).then(|| t.node.clone());
                self.hello(message, hint).await
            }
            Topic::Node(t) if t.kind == TopicKind::ConfigReport => {
                if let Err(e) =
                    reports::handle(&self.pool, &t, &message.broker_id, &message.payload).await
                {
                    self.drop_message(e.reason(), message, &e);
                }
            }
            Topic::Node(t) if t.is_temp() => self.temp(message, &t).await,
            // Our own config pushes, or what another subscription let in.
            _ => {}
        }
    }

    async fn hello(&mut self, message: &Inbound, uid_hint: Option<String>) {
        let hello = match NodeHello::decode(&message.payload) {
            Ok(h) => h,
            Err(e) => return self.drop_message(e.reason(), message, &e),
        };
        let hardware_id = hello.hardware_id.trim();
        if !lifecycle::valid_hardware_id(hardware_id) {
            let e = "hardware_id must be 1 to 128 visible characters without / + #";
            return self.drop_message("invalid_field", message, &e);
        }
        let sighting = Sighting {
            hardware_id: hardware_id.to_owned(),
            node_type: hello.node_type.clone(),
            fw_version: hello.fw_version.clone(),
            capabilities: Some(hello.capabilities.clone()),
            uid_hint: hello.node_uid.clone().or(uid_hint),
            broker_id: message.broker_id.to_string(),
        };
        match registration::register(&self.pool, &sighting).await {
            Ok(Registered::New { uid, .. }) => {
                metrics::counter!(m::DEVICE_HELLOS, "outcome" => "registered").increment(1);
                info!(hardware_id = %sighting.hardware_id, uid = %uid, broker = %message.broker_id,
                    node_type = ?hello.node_type, fw_version = ?hello.fw_version,
                    "Registered a new node from its hello; it waits for a bind.");
            }
            Ok(Registered::Known { .. }) => {
                metrics::counter!(m::DEVICE_HELLOS, "outcome" => "known").increment(1);
            }
            Ok(Registered::Decommissioned { uid }) => {
                metrics::counter!(m::DEVICE_HELLOS, "outcome" => "decommissioned").increment(1);
                let e = format!("node {uid} is decommissioned; its hello changes nothing");
                self.drop_message("decommissioned", message, &e);
            }
            Err(e) => self.drop_message("db_error", message, &e),
        }
    }

    async fn temp(&mut self, message: &Inbound, topic: &NodeTopic) {
        if matches!(topic.kind, TopicKind::Config | TopicKind::Command) {
            return; // downlink (our own config pushes): not the node's traffic
        }
        let kind = topic.kind.as_str();
        metrics::counter!(m::DEVICE_UNBOUND_MESSAGES, "kind" => kind).increment(1);
        let hardware_id = topic.node.as_str();
        // No identity to register; and a last will is the broker speaking
        // for a node that is gone, not a sighting.
        if hardware_id == NO_HARDWARE_ID || topic.kind == TopicKind::Lwt {
            return;
        }
        let reading = if topic.kind == TopicKind::Telemetry {
            let now = chrono::Utc::now().timestamp();
            match Telemetry::decode(&message.payload, now) {
                Ok(t) => Some(json!({
                    "metric": t.metric_type.as_str(), "value": t.value, "ts": t.ts,
                    "unit": t.unit, "received_at": now,
                })),
                Err(e) => return self.drop_message(e.reason(), message, &e),
            }
        } else {
            None
        };
        let key = format!("{hardware_id}/{}", topic.channel.as_deref().unwrap_or(kind));
        if !self.writes.allow(&key, Instant::now()) {
            return;
        }
        let sighting = Sighting {
            hardware_id: hardware_id.to_owned(),
            broker_id: message.broker_id.to_string(),
            ..Sighting::default()
        };
        let node_id = match registration::register(&self.pool, &sighting).await {
            Ok(Registered::New { id, uid }) => {
                info!(hardware_id, uid = %uid, broker = %message.broker_id, kind,
                    "Registered a new node from its temp-namespace uplink; it waits for a bind.");
                id
            }
            Ok(Registered::Known { id, .. }) => id,
            Ok(Registered::Decommissioned { .. }) => return,
            Err(e) => {
                self.writes.forget(&key);
                return self.drop_message("db_error", message, &e);
            }
        };
        if let (Some(reading), Some(channel)) = (reading, &topic.channel)
            && let Err(e) = nodes::store_reading(&self.pool, node_id, channel, &reading).await
        {
            self.writes.forget(&key);
            self.drop_message("db_error", message, &e);
        }
    }
}
