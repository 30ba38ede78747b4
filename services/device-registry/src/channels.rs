//! A node's channels: how `node_channels` follows the channels a node
//! reports in its `config_report` (the sync plan), and the channels a bind
//! sends a node that never reported any (what it sent while unbound, else
//! its type's defaults). No I/O: unit-tested here.

use std::collections::BTreeMap;

use common::store::node_channels::ChannelRow;
use proto::payloads::NodeConfigChannel;
use serde_json::{Map, Value, json};

use crate::lifecycle::valid_uid;

/// What to write so that `node_channels` holds what the node reported.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// New or changed rows.
    pub upsert: Vec<ChannelRow>,
    /// Channels the node no longer has.
    pub remove: Vec<String>,
    /// Reported channels that cannot be stored (bad name or type).
    pub skipped: Vec<String>,
}

/// The row for a reported channel: `SENSOR` → `sensor` with its metric and
/// unit, `ACTUATOR` → `actuator`; `None` for another type or a bad name.
pub fn row_of(channel: &NodeConfigChannel) -> Option<ChannelRow> {
    if !valid_uid(&channel.name) {
        return None;
    }
    let (kind, metric_type) = match channel.kind.to_ascii_uppercase().as_str() {
        "SENSOR" => ("sensor", channel.metric.clone()),
        "ACTUATOR" => ("actuator", None),
        _ => return None,
    };
    Some(ChannelRow {
        channel: channel.name.clone(),
        kind: kind.into(),
        metric_type,
        unit: channel.unit.clone(),
    })
}

/// The writes that turn `existing` into `reported`.
pub fn plan_sync(existing: &[ChannelRow], reported: &[NodeConfigChannel]) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut wanted: BTreeMap<String, ChannelRow> = BTreeMap::new();
    for c in reported {
        match row_of(c) {
            Some(row) => {
                wanted.insert(row.channel.clone(), row);
            }
            None => plan.skipped.push(c.name.clone()),
        }
    }
    for old in existing {
        if !wanted.contains_key(&old.channel) {
            plan.remove.push(old.channel.clone());
        }
    }
    for (name, row) in wanted {
        if existing.iter().find(|e| e.channel == name) != Some(&row) {
            plan.upsert.push(row);
        }
    }
    plan
}

fn sensor(name: &str, metric: &str) -> NodeConfigChannel {
    let mut extra = Map::new();
    extra.insert("poll_interval_ms".into(), json!(3000));
    NodeConfigChannel {
        name: name.into(),
        kind: "SENSOR".into(),
        metric: Some(metric.into()),
        actuator_type: None,
        unit: None,
        extra,
    }
}

fn actuator(name: &str, actuator_type: &str) -> NodeConfigChannel {
    NodeConfigChannel {
        name: name.into(),
        kind: "ACTUATOR".into(),
        metric: None,
        actuator_type: Some(actuator_type.into()),
        unit: None,
        extra: Map::new(),
    }
}

/// The channels a node of `node_type` has out of the factory
/// (NODE_CHANNELS_REFERENCE.md, the common ones); empty for an unknown type.
pub fn type_defaults(node_type: &str) -> Vec<NodeConfigChannel> {
    match node_type {
        "ph" => vec![
            sensor("ph_sensor", "PH"),
            actuator("pump_acid", "PUMP"),
            actuator("pump_base", "PUMP"),
        ],
        "ec" => vec![sensor("ec_sensor", "EC"), actuator("pump_nutrient", "PUMP")],
        "climate" => vec![
            sensor("air_temp_c", "TEMPERATURE"),
            sensor("air_rh", "HUMIDITY"),
            actuator("fan_air", "FAN"),
        ],
        "irrig" => vec![actuator("pump_irrigation", "PUMP")],
        "light" => vec![actuator("white_light", "LED")],
        "relay" => vec![actuator("relay_1", "RELAY")],
        "water_sensor" => vec![sensor("water_level", "WATER_LEVEL")],
        _ => Vec::new(),
    }
}

/// Sensor channels from the readings an unbound node sent
/// (`{"ph_sensor": {"metric": "PH", …}}`), by name.
pub fn from_readings(readings: &Value) -> Vec<NodeConfigChannel> {
    readings
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| valid_uid(name))
        .filter_map(|(name, r)| Some(sensor(name, r.get("metric")?.as_str()?)))
        .collect()
}

/// The channels of a bind's NodeConfig when the request names none and the
/// node never reported its config: the defaults of its type (its pumps and
/// relays send no readings), and every sensor it sent readings of while
/// unbound that the defaults do not name.
pub fn for_bind(node_type: &str, readings: &Value) -> Vec<NodeConfigChannel> {
    let mut channels = type_defaults(node_type);
    for seen in from_readings(readings) {
        if !channels.iter().any(|c| c.name == seen.name) {
            channels.push(seen);
        }
    }
    channels
}

/// Checks channels given in a bind request; the message names the problem.
pub fn validate(channels: &[NodeConfigChannel]) -> Result<(), String> {
    for (i, c) in channels.iter().enumerate() {
        if row_of(c).is_none() {
            return Err(format!(
                "channels[{i}]: `name` must match ^[A-Za-z0-9_.-]{{1,64}}$ and `type` be SENSOR or ACTUATOR"
            ));
        }
        if c.kind.eq_ignore_ascii_case("SENSOR") && c.metric.is_none() {
            return Err(format!("channels[{i}]: a SENSOR needs a `metric`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: &str, metric: Option<&str>) -> ChannelRow {
        ChannelRow {
            channel: name.into(),
            kind: kind.into(),
            metric_type: metric.map(Into::into),
            unit: None,
        }
    }

    #[test]
    fn sync_adds_changes_and_removes() {
        let existing = vec![
            row("ph_sensor", "sensor", Some("PH")),
            row("pump_acid", "actuator", None),
            row("old", "actuator", None),
        ];
        let mut reported = vec![
            sensor("ph_sensor", "PH"),
            sensor("pump_acid", "EC"),
            actuator("pump_base", "PUMP"),
        ];
        reported.push(NodeConfigChannel {
            kind: "DISPLAY".into(),
            ..actuator("oled", "X")
        });
        let plan = plan_sync(&existing, &reported);
        assert_eq!(
            plan.upsert,
            vec![
                row("pump_acid", "sensor", Some("EC")),
                row("pump_base", "actuator", None)
            ]
        );
        assert_eq!(plan.remove, vec!["old".to_owned()]);
        assert_eq!(plan.skipped, vec!["oled".to_owned()]);
        // Nothing to do when nothing changed.
        let same = plan_sync(
            &[row("ph_sensor", "sensor", Some("PH"))],
            &[sensor("ph_sensor", "PH")],
        );
        assert_eq!(same, SyncPlan::default());
    }

    #[test]
    fn bind_channels_are_the_type_defaults_and_what_the_node_sent() {
        let readings = json!({"ph_sensor": {"metric": "PH", "value": 6.5, "ts": 1}, "bad name": {"metric": "EC"}});
        let c = for_bind("ph", &readings);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ph_sensor", "pump_acid", "pump_base"]);
        let extra = json!({"soil_1": {"metric": "SOIL_MOISTURE"}});
        let c = for_bind("ph", &extra);
        assert_eq!(c.len(), 4);
        assert_eq!(c[3].metric.as_deref(), Some("SOIL_MOISTURE"));
        assert_eq!(for_bind("ph", &json!({})).len(), 3);
        assert!(for_bind("unknown", &json!({})).is_empty());
        assert_eq!(for_bind("unknown", &extra).len(), 1);
    }

    #[test]
    fn request_channels_are_checked() {
        assert!(validate(&type_defaults("climate")).is_ok());
        let mut bad = sensor("ph_sensor", "PH");
        bad.metric = None;
        assert!(validate(&[bad]).unwrap_err().contains("metric"));
        assert!(
            validate(&[actuator("a b", "PUMP")])
                .unwrap_err()
                .contains("channels[0]")
        );
    }
}
