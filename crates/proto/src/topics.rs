//! Building and parsing the MQTT topics of the contract (section 2).
//!
//! Node topics are `hydro/{gh}/{zone}/{node}[/{channel}]/{kind}`; the broker
//! move topic is `nodes/{node}/config/update`; the clock topics are
//! `hydro/time/request` and `hydro/time/response`. An unbound node lives in
//! the temp namespace `hydro/gh-temp/zn-temp/{hardware_id}/…` (see
//! [`NodeTopic::is_temp`]) until it is bound. Parsing never allocates more
//! than the uids it returns and refuses anything that is not exactly one of
//! these shapes, so a stray topic cannot be written against the wrong node.

use std::fmt;

crate::text_enum! {
    /// What a node-side topic carries; its text is the last topic level.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum TopicKind {
        Telemetry => "telemetry",
        Command => "command",
        CommandResponse => "command_response",
        Event => "event",
        Status => "status",
        Lwt => "lwt",
        Heartbeat => "heartbeat",
        Error => "error",
        NodeHello => "node_hello",
        /// Node → backend: the NodeConfig the node runs.
        ConfigReport => "config_report",
        /// Backend → node: a NodeConfig push (bind, rebind, change, move).
        Config => "config",
    }
}

impl TopicKind {
    /// Whether the topic has a `{channel}` level before the kind.
    pub fn has_channel(self) -> bool {
        matches!(
            self,
            TopicKind::Telemetry
                | TopicKind::Command
                | TopicKind::CommandResponse
                | TopicKind::Event
        )
    }

    /// The wildcard filter matching this kind on every node, e.g.
    /// `hydro/+/+/+/+/telemetry`.
    pub fn filter(self) -> String {
        if self.has_channel() {
            format!("hydro/+/+/+/+/{}", self.as_str())
        } else {
            format!("hydro/+/+/+/{}", self.as_str())
        }
    }

    /// The MQTT 5 shared-subscription filter for `group`:
    /// `$share/{group}/hydro/+/+/+/+/telemetry`.
    pub fn shared_filter(self, group: &str) -> String {
        format!("$share/{group}/{}", self.filter())
    }
}

/// Where a node-side message comes from or goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeTopic {
    pub greenhouse: String,
    pub zone: String,
    pub node: String,
    /// Present exactly when `kind.has_channel()`.
    pub channel: Option<String>,
    pub kind: TopicKind,
}

/// The short hello topic a node without a zone publishes to.
pub const GLOBAL_NODE_HELLO: &str = "hydro/node_hello";

/// A node asks for the time here after every connect (QoS 1).
pub const TIME_REQUEST: &str = "hydro/time/request";
/// The backend answers every time request here, for every node (QoS 1).
pub const TIME_RESPONSE: &str = "hydro/time/response";

/// The greenhouse level of an unbound node's topics.
pub const TEMP_GREENHOUSE: &str = "gh-temp";
/// The zone level of an unbound node's topics.
pub const TEMP_ZONE: &str = "zn-temp";

/// Any topic of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Node(NodeTopic),
    /// `hydro/node_hello`: a node that does not know its place yet.
    GlobalNodeHello,
    /// `nodes/{node}/config/update`.
    ConfigUpdate {
        node: String,
    },
    /// `hydro/time/request`: a node asks for the time.
    TimeRequest,
    /// `hydro/time/response`: the backend's answer.
    TimeResponse,
}

/// Why a topic did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic `{topic}` is not a hydro topic: {problem}")]
pub struct TopicError {
    pub topic: String,
    pub problem: &'static str,
}

fn valid_level(level: &str) -> bool {
    !level.is_empty() && !level.contains(['+', '#']) && level.len() <= 128
}

impl Topic {
    /// Parses a concrete (wildcard-free) topic.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let err = |problem| TopicError {
            topic: topic.to_owned(),
            problem,
        };
        match topic {
            GLOBAL_NODE_HELLO => return Ok(Topic::GlobalNodeHello),
            TIME_REQUEST => return Ok(Topic::TimeRequest),
            TIME_RESPONSE => return Ok(Topic::TimeResponse),
            _ => {}
        }
        let levels: Vec<&str> = topic.split('/').collect();
        if !levels.iter().all(|l| valid_level(l)) {
            return Err(err("empty, wildcard or oversized level"));
        }
        match levels.as_slice() {
            ["nodes", node, "config", "update"] => Ok(Topic::ConfigUpdate {
                node: (*node).to_owned(),
            }),
            ["hydro", gh, zone, node, kind] => {
                let kind = TopicKind::from_text(kind).ok_or_else(|| err("unknown message kind"))?;
                if kind.has_channel() {
                    return Err(err("this kind needs a channel level"));
                }
                Ok(Topic::Node(NodeTopic::new(gh, zone, node, None, kind)))
            }
            ["hydro", gh, zone, node, channel, kind] => {
                let kind = TopicKind::from_text(kind).ok_or_else(|| err("unknown message kind"))?;
                if !kind.has_channel() {
                    return Err(err("this kind takes no channel level"));
                }
                Ok(Topic::Node(NodeTopic::new(
                    gh,
                    zone,
                    node,
                    Some(channel),
                    kind,
                )))
            }
            ["hydro", ..] => Err(err("wrong number of levels")),
            _ => Err(err("does not start with hydro/ or nodes/")),
        }
    }
}

impl NodeTopic {
    pub fn new(gh: &str, zone: &str, node: &str, channel: Option<&str>, kind: TopicKind) -> Self {
        NodeTopic {
            greenhouse: gh.to_owned(),
            zone: zone.to_owned(),
            node: node.to_owned(),
            channel: channel.map(str::to_owned),
            kind,
        }
    }

    /// Whether this is the temp namespace of an unbound node
    /// (`hydro/gh-temp/zn-temp/{hardware_id}/…`): its `node` level is then
    /// the hardware id, not a node uid.
    pub fn is_temp(&self) -> bool {
        self.greenhouse == TEMP_GREENHOUSE && self.zone == TEMP_ZONE
    }

    /// Parses a node topic; the global hello and config topics are refused.
    pub fn parse(topic: &str) -> Result<NodeTopic, TopicError> {
        match Topic::parse(topic)? {
            Topic::Node(t) => Ok(t),
            _ => Err(TopicError {
                topic: topic.to_owned(),
                problem: "not a node topic",
            }),
        }
    }
}

impl fmt::Display for NodeTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hydro/{}/{}/{}/", self.greenhouse, self.zone, self.node)?;
        if let Some(channel) = &self.channel {
            write!(f, "{channel}/")?;
        }
        f.write_str(self.kind.as_str())
    }
}

/// `hydro/{gh}/{zone}/{node}/{channel}/{kind}` for the channel kinds.
pub fn channel_topic(gh: &str, zone: &str, node: &str, channel: &str, kind: TopicKind) -> String {
    debug_assert!(kind.has_channel());
    format!("hydro/{gh}/{zone}/{node}/{channel}/{}", kind.as_str())
}

/// `hydro/{gh}/{zone}/{node}/{kind}` for the node kinds.
pub fn node_topic(gh: &str, zone: &str, node: &str, kind: TopicKind) -> String {
    debug_assert!(!kind.has_channel());
    format!("hydro/{gh}/{zone}/{node}/{}", kind.as_str())
}

/// `hydro/gh-temp/zn-temp/{hardware_id}/{kind}`: an unbound node's topic.
pub fn temp_node_topic(hardware_id: &str, kind: TopicKind) -> String {
    node_topic(TEMP_GREENHOUSE, TEMP_ZONE, hardware_id, kind)
}

/// `nodes/{node}/config/update`.
pub fn config_update_topic(node: &str) -> String {
    format!("nodes/{node}/config/update")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        for kind in [
            TopicKind::Telemetry,
            TopicKind::Command,
            TopicKind::CommandResponse,
            TopicKind::Event,
            TopicKind::Status,
            TopicKind::Lwt,
            TopicKind::Heartbeat,
            TopicKind::Error,
            TopicKind::NodeHello,
            TopicKind::ConfigReport,
            TopicKind::Config,
        ] {
            let s = if kind.has_channel() {
                channel_topic("gh-1", "zn-1", "nd-ph-1", "ph_sensor", kind)
            } else {
                node_topic("gh-1", "zn-1", "nd-ph-1", kind)
            };
            let parsed = NodeTopic::parse(&s).unwrap();
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.node, "nd-ph-1");
            assert_eq!(parsed.to_string(), s);
        }
    }

    #[test]
    fn examples_from_the_contract() {
        let t = NodeTopic::parse("hydro/gh-1/zn-2/nd-ph-1/pump_acid/command_response").unwrap();
        assert_eq!(t.channel.as_deref(), Some("pump_acid"));
        assert_eq!(t.zone, "zn-2");
        assert_eq!(
            Topic::parse("hydro/node_hello").unwrap(),
            Topic::GlobalNodeHello
        );
        assert_eq!(
            Topic::parse("nodes/nd-ph-1/config/update").unwrap(),
            Topic::ConfigUpdate {
                node: "nd-ph-1".into()
            }
        );
        assert_eq!(config_update_topic("nd-1"), "nodes/nd-1/config/update");
        assert_eq!(
            Topic::parse("hydro/time/request").unwrap(),
            Topic::TimeRequest
        );
        assert_eq!(
            Topic::parse("hydro/time/response").unwrap(),
            Topic::TimeResponse
        );
    }

    #[test]
    fn temp_namespace() {
        let t = NodeTopic::parse("hydro/gh-temp/zn-temp/esp32-a1b2c3d4e5f6/ph_sensor/telemetry")
            .unwrap();
        assert!(t.is_temp());
        assert_eq!(t.node, "esp32-a1b2c3d4e5f6");
        assert_eq!(
            temp_node_topic("esp32-a1b2c3d4e5f6", TopicKind::Config),
            "hydro/gh-temp/zn-temp/esp32-a1b2c3d4e5f6/config"
        );
        assert!(
            !NodeTopic::parse("hydro/gh-1/zn-temp/nd-1/status")
                .unwrap()
                .is_temp()
        );
        let r = NodeTopic::parse("hydro/gh-1/zn-1/nd-ph-1/config_report").unwrap();
        assert_eq!(r.kind, TopicKind::ConfigReport);
    }

    #[test]
    fn filters() {
        assert_eq!(TopicKind::Telemetry.filter(), "hydro/+/+/+/+/telemetry");
        assert_eq!(TopicKind::Status.filter(), "hydro/+/+/+/status");
        assert_eq!(
            TopicKind::CommandResponse.shared_filter("mqtt-bridge"),
            "$share/mqtt-bridge/hydro/+/+/+/+/command_response"
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "hydro/gh/zn/nd/telemetry",          // telemetry needs a channel
            "hydro/gh/zn/nd/ch/status",          // status takes none
            "hydro/gh/zn/nd/ch/weather",         // unknown kind
            "hydro/gh//nd/ch/telemetry",         // empty level
            "hydro/gh/zn/nd/ch/telemetry/extra", // too deep
            "hydro/gh/+/nd/ch/telemetry",        // wildcard
            "other/gh/zn/nd/ch/telemetry",
            "",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad}");
        }
    }
}
