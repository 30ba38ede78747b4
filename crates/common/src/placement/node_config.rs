//! The NodeConfig a node is sent (contract: `…/config`, format version 3),
//! built from what the database knows of it, and its publication.
//!
//! A push is the only way to change what a firmware node runs: its zone (a
//! bind or a rebind, sent to the namespace the node listens on), its secret,
//! or its broker (a move: the `mqtt` section names the new one). The node
//! applies it, saves it and answers with a `config_report` from its new
//! namespace and broker; that report is what confirms the change.
//!
//! The channels and every firmware field (limits, GPIOs, calibration) come
//! from the node's last `config_report` when there is one, so a push never
//! tells a node about hardware it does not have; only the identity, the
//! broker and the secret are ours to set.
//!
//! The `mqtt` section also carries the login the node is to use
//! ([`set_login`]): its own broker account (username = uid, password =
//! `nodes.mqtt_password`, see [`crate::mqtt::accounts`]) once it has one
//! and is placed outside the temp namespace; the caller sets the provision
//! login of unbound nodes.
//!
//! The firmware skips a pushed config that equals the one it runs once
//! `mqtt` and `wifi` are left out of the comparison (it only answers "config
//! unchanged"). So the broker is also named outside `mqtt`, in the top-level
//! [`BROKER_URL_FIELD`]: a move is then a change the node applies, and the
//! node reports it back, which is how we see where it is meant to be.

use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::mqtt::config::parse_broker_url;
use crate::mqtt::{MqttConnection, MqttError};
use crate::store::node_channels::{self, ChannelRow};
use crate::store::nodes;
use proto::payloads::{NodeConfig, NodeConfigChannel};
use proto::topics::{TopicKind, node_topic};

/// The NodeConfig format version this backend sends.
pub const FORMAT_VERSION: u32 = 3;
/// MQTT keepalive sent to nodes, in seconds (the firmware's default).
pub const NODE_KEEPALIVE_SEC: u32 = 30;
/// The top-level NodeConfig field naming the broker the config is for (see
/// the module doc). The firmware stores and reports unknown fields as sent.
pub const BROKER_URL_FIELD: &str = "broker_url";

/// Why a NodeConfig could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    #[error("node {0} not found")]
    NodeNotFound(i64),
    #[error("broker URL `{0}` is not mqtt://host:port")]
    BadBrokerUrl(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("publish failed: {0}")]
    Publish(#[from] MqttError),
}

/// The `mqtt` section for a broker URL: `{"host","port","keepalive"}` (plus
/// `"tls": true` for `mqtts://`).
pub fn broker_section(url: &str) -> Result<Value, NodeConfigError> {
    let (host, port, tls) =
        parse_broker_url(url).map_err(|_| NodeConfigError::BadBrokerUrl(url.to_owned()))?;
    let mut section = json!({ "host": host, "port": port, "keepalive": NODE_KEEPALIVE_SEC });
    if tls {
        section["tls"] = Value::Bool(true);
    }
    Ok(section)
}

/// Puts a broker login in a NodeConfig's `mqtt` section: `username` and
/// `password` (what the firmware reads, config_storage.c), and the `user` /
/// `pass` aliases issue 11 names (older firmware reads `pass`).
pub fn set_login(mqtt: &mut Value, username: &str, password: &str) {
    if let Some(section) = mqtt.as_object_mut() {
        for (key, value) in [
            ("username", username),
            ("user", username),
            ("password", password),
            ("pass", password),
        ] {
            section.insert(key.into(), Value::String(value.to_owned()));
        }
    }
}

/// The login in a NodeConfig's `mqtt` section (`username`/`user`,
/// `password`/`pass`), if any.
pub fn login(mqtt: &Value) -> Option<(String, String)> {
    let field = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| mqtt.get(*n).and_then(Value::as_str))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some((field(["username", "user"])?, field(["password", "pass"])?))
}

/// Where the node is to live: its greenhouse, zone and uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub gh_uid: String,
    pub zone_uid: String,
    pub node_uid: String,
}

/// The actuator type the firmware expects, guessed from a channel name when
/// the node never told us (`pump_acid` → `PUMP`).
fn actuator_type(channel: &str) -> &'static str {
    let c = channel.to_ascii_lowercase();
    if c.contains("pump") {
        "PUMP"
    } else if c.contains("valve") {
        "VALVE"
    } else if c.contains("fan") {
        "FAN"
    } else if c.contains("heat") {
        "HEATER"
    } else if c.contains("light") || c.contains("led") {
        "LED"
    } else {
        "RELAY"
    }
}

fn channel_from_row(row: ChannelRow) -> NodeConfigChannel {
    let sensor = row.kind == "sensor";
    let mut extra = Map::new();
    if sensor {
        extra.insert("poll_interval_ms".into(), json!(3000));
    }
    NodeConfigChannel {
        actuator_type: (!sensor).then(|| actuator_type(&row.channel).to_owned()),
        name: row.channel,
        kind: if sensor { "SENSOR" } else { "ACTUATOR" }.into(),
        metric: if sensor { row.metric_type } else { None },
        unit: row.unit,
        extra,
    }
}

/// Builds the NodeConfig for node `node_id`: placed at `place` (default: where
/// the database has it), connecting to the broker at `broker_url`, keyed with
/// its own secret (or `default_secret` when it has none), logging in with its
/// own broker account when it has one and `place` is not the temp namespace.
pub async fn build(
    pool: &PgPool,
    node_id: i64,
    place: Option<Place>,
    broker_url: &str,
    default_secret: &str,
) -> Result<NodeConfig, NodeConfigError> {
    let row = nodes::config_source(pool, node_id)
        .await?
        .ok_or(NodeConfigError::NodeNotFound(node_id))?;
    let place = place.unwrap_or_else(|| Place {
        gh_uid: row
            .gh_uid
            .clone()
            .unwrap_or_else(|| proto::topics::TEMP_GREENHOUSE.into()),
        zone_uid: row
            .zone_uid
            .clone()
            .unwrap_or_else(|| proto::topics::TEMP_ZONE.into()),
        node_uid: row.uid.clone(),
    });
    let reported = row
        .config
        .and_then(|c| serde_json::from_value::<NodeConfig>(c).ok());
    let channels = match &reported {
        Some(r) if !r.channels.is_empty() => r.channels.clone(),
        _ => node_channels::for_node(pool, node_id)
            .await?
            .into_iter()
            .map(channel_from_row)
            .collect(),
    };
    let mut extra = reported
        .as_ref()
        .map(|r| r.extra.clone())
        .unwrap_or_default();
    // Ours to decide, never echoed back from a report.
    extra.remove("capabilities");
    extra.insert(
        BROKER_URL_FIELD.into(),
        Value::String(broker_url.to_owned()),
    );
    let mut mqtt = broker_section(broker_url)?;
    if let Some(password) = &row.mqtt_password
        && place.gh_uid != proto::topics::TEMP_GREENHOUSE
    {
        set_login(&mut mqtt, &place.node_uid, password);
    }
    Ok(NodeConfig {
        node_id: place.node_uid,
        version: FORMAT_VERSION,
        node_type: row.node_type,
        gh_uid: place.gh_uid,
        zone_uid: place.zone_uid,
        channels,
        wifi: Some(json!({ "configured": true })),
        mqtt,
        fw_version: None,
        node_secret: Some(row.secret.unwrap_or_else(|| default_secret.to_owned())),
        extra,
    })
}

/// The topic a node listens on for its config: `hydro/{gh}/{zone}/{node}/config`.
/// For an unbound node, `node` is its hardware id in the temp namespace.
pub fn config_topic(gh_uid: &str, zone_uid: &str, node: &str) -> String {
    node_topic(gh_uid, zone_uid, node, TopicKind::Config)
}

/// Publishes `config` on `topic` through `connection` (QoS 1, not retained:
/// a node reads its config when it is connected, as the firmware expects).
pub async fn publish(
    connection: &MqttConnection,
    topic: &str,
    config: &NodeConfig,
) -> Result<(), NodeConfigError> {
    let payload = serde_json::to_vec(config).expect("a NodeConfig always serialises");
    connection.publish(topic, payload, false).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_sections() {
        assert_eq!(
            broker_section("mqtt://127.0.0.1:1884").unwrap(),
            json!({"host": "127.0.0.1", "port": 1884, "keepalive": 30})
        );
        assert_eq!(
            broker_section("mqtts://broker.example:8884").unwrap(),
            json!({"host": "broker.example", "port": 8884, "keepalive": 30, "tls": true})
        );
        assert_eq!(broker_section("mqtt://mosquitto").unwrap()["port"], 1883);
        for bad in ["http://x:1", "mqtt://:1883", "mqtt://h:99999", "mqtt://h:x"] {
            assert!(broker_section(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logins_carry_every_name_the_firmware_reads() {
        let mut mqtt = broker_section("mqtt://h:1883").unwrap();
        assert_eq!(login(&mqtt), None);
        set_login(&mut mqtt, "nd-ph-1", "pw");
        assert_eq!(mqtt["username"], "nd-ph-1");
        assert_eq!(mqtt["user"], "nd-ph-1");
        assert_eq!(mqtt["password"], "pw");
        assert_eq!(mqtt["pass"], "pw");
        assert_eq!(login(&mqtt), Some(("nd-ph-1".into(), "pw".into())));
        assert_eq!(
            login(&json!({"user": "u", "pass": "p"})),
            Some(("u".into(), "p".into()))
        );
    }

    #[test]
    fn channel_defaults() {
        let c = channel_from_row(ChannelRow {
            channel: "pump_acid".into(),
            kind: "actuator".into(),
            metric_type: None,
            unit: None,
        });
        assert_eq!(c.kind, "ACTUATOR");
        assert_eq!(c.actuator_type.as_deref(), Some("PUMP"));
        let s = channel_from_row(ChannelRow {
            channel: "ph_sensor".into(),
            kind: "sensor".into(),
            metric_type: Some("PH".into()),
            unit: Some("pH".into()),
        });
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"name":"ph_sensor","type":"SENSOR","metric":"PH","unit":"pH","poll_interval_ms":3000})
        );
    }
}
