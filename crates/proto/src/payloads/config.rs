//! What the backend pushes besides commands: moves (`config/update`), the
//! time, and the NodeConfig a node is bound with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;

/// `nodes/{node}/config/update`, retained: move to another broker. Signed
/// like a command (see [`crate::signing::sign_config_update`]); an unsigned
/// one decodes (with an empty `sig`) so the node can refuse it by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// `mqtt://host:port` of the broker to use from now on.
    pub mqtt_broker: String,
    pub broker_id: String,
    /// Brokers to try in order when `mqtt_broker` is unreachable.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Seconds since the epoch; also orders moves (a node takes only a
    /// higher one than it has).
    pub ts: i64,
    /// HMAC-SHA256 (hex) of the canonical form of the other fields, keyed
    /// with the node's secret; empty when unsigned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sig: String,
}

impl ConfigUpdate {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let c: ConfigUpdate = decode(bytes)?;
        if !c.mqtt_broker.starts_with("mqtt://") && !c.mqtt_broker.starts_with("mqtts://") {
            return Err(PayloadError::field(
                "mqtt_broker",
                "must be an mqtt:// or mqtts:// URL",
            ));
        }
        Ok(c)
    }
}

/// `hydro/time/response`: the backend's clock, answering a time request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeResponse {
    /// Always `time_response`.
    pub message_type: String,
    /// Seconds since the epoch.
    pub unix_ts: i64,
    /// The same instant (the firmware reads either).
    pub server_time: i64,
}

impl TimeResponse {
    /// The answer for `unix_ts` (seconds).
    pub fn at(unix_ts: i64) -> Self {
        TimeResponse {
            message_type: "time_response".into(),
            unix_ts,
            server_time: unix_ts,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        decode(bytes)
    }
}

/// The MQTT section of a NodeConfig: where the node connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfigMqtt {
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
}

/// One channel of a NodeConfig (`SENSOR` with a `metric`, or `ACTUATOR` with
/// an `actuator_type`); other fields (limits, GPIOs) are kept as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfigChannel {
    pub name: String,
    /// `SENSOR` or `ACTUATOR`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actuator_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The NodeConfig document, format version 3: pushed on `…/config` (with
/// `node_secret`) and reported on `…/config_report` (without it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub node_id: String,
    pub version: u32,
    #[serde(rename = "type")]
    pub node_type: String,
    pub gh_uid: String,
    pub zone_uid: String,
    pub channels: Vec<NodeConfigChannel>,
    /// A full object, or `{"configured": true}` to keep what the node has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi: Option<Value>,
    /// A full object (a push always sends one), or `{"configured": true}`.
    pub mqtt: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw_version: Option<String>,
    /// The HMAC key for commands (≥ 32 characters); only ever pushed down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_secret: Option<String>,
    /// Limits, calibration, fail-safe guards, ...: kept as the node sent them.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NodeConfig {
    /// Decodes a `config_report` (or a pushed config) and checks the fields
    /// the firmware requires.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let c: NodeConfig = decode(bytes)?;
        for (field, value) in [
            ("node_id", &c.node_id),
            ("type", &c.node_type),
            ("gh_uid", &c.gh_uid),
            ("zone_uid", &c.zone_uid),
        ] {
            if value.trim().is_empty() || value.len() > 64 {
                return Err(PayloadError::field(field, "must be 1 to 64 characters"));
            }
        }
        if !c.mqtt.is_object() {
            return Err(PayloadError::field("mqtt", "must be an object"));
        }
        Ok(c)
    }

    /// The broker section, when it is a full one (not `{"configured":true}`).
    pub fn mqtt_target(&self) -> Option<NodeConfigMqtt> {
        serde_json::from_value(self.mqtt.clone()).ok()
    }

    /// Whether the node declares it follows `config/update` moves.
    pub fn declares_config_update(&self) -> bool {
        self.extra
            .get("capabilities")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|v| v == CAPABILITY_CONFIG_UPDATE))
    }
}
