//! What a publish or subscribe can end in: the error, or the broker's word
//! on a QoS 1 publish it accepted.

/// Why a publish or subscribe did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    #[error("broker not connected")]
    NotConnected,
    #[error("broker did not acknowledge the publish in time")]
    Timeout,
    #[error("broker refused the publish: {0}")]
    Refused(String),
    #[error("too many publishes waiting for the broker")]
    Backpressure,
    #[error("MQTT connection is shut down")]
    Closed,
    #[error("invalid broker URL `{0}`: use mqtt://host:port or mqtts://host:port")]
    BadUrl(String),
}

impl MqttError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            MqttError::NotConnected => "not_connected",
            MqttError::Timeout => "timeout",
            MqttError::Refused(_) => "refused",
            MqttError::Backpressure => "backpressure",
            MqttError::Closed => "closed",
            MqttError::BadUrl(_) => "bad_url",
        }
    }
}

/// What the broker said about a QoS 1 publish it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// At least one subscription matched the topic.
    Matched,
    /// The broker took it, but nobody subscribed to the topic (MQTT 5 reason
    /// 0x10): a command to a node that is not on this broker goes nowhere.
    NoSubscribers,
}
