//! The MQTT concern of the shared settings (`MQTT_*`): the default broker
//! and the login every broker takes.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{SettingsError, require, within};

/// How a service reaches its brokers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MqttSettings {
    /// `MQTT_HOST`: the default broker's host; default `127.0.0.1`.
    #[serde(rename = "mqtt_host")]
    pub host: String,
    /// `MQTT_PORT`: the default broker's port; default 1883.
    #[serde(rename = "mqtt_port")]
    pub port: u16,
    /// `MQTT_USER`: username for every broker, if they need one.
    #[serde(rename = "mqtt_user")]
    pub user: Option<String>,
    /// `MQTT_PASS`: password for `MQTT_USER`.
    #[serde(rename = "mqtt_pass")]
    pub pass: Option<SecretString>,
    /// `MQTT_TLS`: connect with TLS (`mqtts`); default false.
    #[serde(rename = "mqtt_tls")]
    pub tls: bool,
    /// `MQTT_BROKER_ID`: the id of the default broker in the `brokers` table;
    /// default `mqtt1`.
    #[serde(rename = "mqtt_broker_id")]
    pub broker_id: String,
    /// `MQTT_SHARE_GROUP`: the shared-subscription group of this service's
    /// instances; defaults to the service name. Set it to keep two separate
    /// deployments on one broker from splitting each other's messages.
    #[serde(rename = "mqtt_share_group")]
    pub share_group: Option<String>,
    /// `MQTT_PUBLISH_TIMEOUT_MS`: how long a QoS 1 publish may wait for the
    /// broker (connection and PUBACK) before it is reported failed; default
    /// 5000.
    #[serde(rename = "mqtt_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            host: "127.0.0.1".into(),
            port: 1883,
            user: None,
            pass: None,
            tls: false,
            broker_id: "mqtt1".into(),
            share_group: None,
            publish_timeout_ms: 5000,
        }
    }
}

impl MqttSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        require(!self.host.trim().is_empty(), "MQTT_HOST must not be empty")?;
        require(
            self.port != 0,
            "MQTT_PORT must be a port number between 1 and 65535",
        )?;
        within(
            "MQTT_PUBLISH_TIMEOUT_MS",
            self.publish_timeout_ms,
            100,
            600_000,
        )?;
        require(
            self.share_group
                .as_ref()
                .is_none_or(|g| !g.contains(['/', '+', '#']) && g.len() <= 64),
            "MQTT_SHARE_GROUP must not contain /, + or # and be at most 64 characters",
        )?;
        require(
            self.pass.is_none() || self.user.is_some(),
            "MQTT_PASS is set but MQTT_USER is not",
        )
    }

    /// The default broker's URL, e.g. `mqtt://127.0.0.1:1883`.
    pub fn default_broker_url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// The shared-subscription group: `MQTT_SHARE_GROUP`, else the service name.
    pub fn share_group_or<'a>(&'a self, service: &'a str) -> &'a str {
        self.share_group
            .as_deref()
            .filter(|g| !g.is_empty())
            .unwrap_or(service)
    }

    /// The publish timeout as a duration.
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }
}
