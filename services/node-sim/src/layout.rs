//! Which zones, nodes and channels exist. Deterministic: the same settings
//! always give the same uids, so pytest-compat and other services' tests can
//! name nodes without asking.
//!
//! Zones are `zn-1`..`zn-{zones}`. Node `i` (0-based) sits in zone
//! `zn-{(i % zones) + 1}`, has kind `NodeKind::ALL[(i / zones) % 5]` and uid
//! `nd-{kind}-{i + 1}`: with 3 zones, `nd-ph-1`, `nd-ph-2`, `nd-ph-3` (one per
//! zone), then `nd-ec-4`, …, and `nd-ph-16` starts the cycle again.
//!
//! With `SIM_PROBES` = N every node also carries N soil-moisture probes,
//! `soil_1`..`soil_N`, read and published with its other sensors: a bed
//! monitored by one multi-probe node, and the way a benchmark gets many
//! readings per connection.

use proto::payloads::MetricType;
use serde::Serialize;

use crate::settings::SimSettings;

proto::text_enum! {
    /// What a node is for; its channels follow from it. Its text is the name
    /// in uids and `nodes.type`; `ALL` is in layout order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum NodeKind {
        Ph => "ph",
        Ec => "ec",
        Climate => "climate",
        Irrigation => "irrigation",
        Light => "light",
    }
}

proto::text_enum! {
    /// Whether a channel measures or acts; stored in `node_channels.type`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum ChannelType {
        Sensor => "sensor",
        Actuator => "actuator",
    }
}

/// One channel of a node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChannelSpec {
    /// `node_channels.channel`, the topic level.
    pub channel: &'static str,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// What a sensor reports; `None` for actuators.
    pub metric_type: Option<MetricType>,
    pub unit: Option<&'static str>,
}

const fn sensor(channel: &'static str, metric: MetricType, unit: &'static str) -> ChannelSpec {
    ChannelSpec {
        channel,
        channel_type: ChannelType::Sensor,
        metric_type: Some(metric),
        unit: Some(unit),
    }
}

const fn actuator(channel: &'static str) -> ChannelSpec {
    ChannelSpec {
        channel,
        channel_type: ChannelType::Actuator,
        metric_type: None,
        unit: None,
    }
}

const PH_CHANNELS: &[ChannelSpec] = &[
    sensor("ph_sensor", MetricType::Ph, "pH"),
    actuator("pump_acid"),
    actuator("pump_base"),
];
const EC_CHANNELS: &[ChannelSpec] = &[
    sensor("ec_sensor", MetricType::Ec, "mS/cm"),
    actuator("pump_nutrients"),
    actuator("pump_dilution"),
];
const CLIMATE_CHANNELS: &[ChannelSpec] = &[
    sensor("temp_air", MetricType::Temperature, "C"),
    sensor("humidity", MetricType::Humidity, "%"),
    sensor("co2", MetricType::Co2, "ppm"),
];
const IRRIGATION_CHANNELS: &[ChannelSpec] = &[
    actuator("pump_irrigation"),
    sensor("water_level", MetricType::WaterLevel, "cm"),
    sensor("flow", MetricType::FlowRate, "l/min"),
];
const LIGHT_CHANNELS: &[ChannelSpec] = &[
    actuator("light"),
    sensor("light_sensor", MetricType::LightIntensity, "lux"),
];

/// The soil-moisture probes a node may carry besides its kind's channels.
pub const PROBE_CHANNELS: [ChannelSpec; 16] = [
    sensor("soil_1", MetricType::SoilMoisture, "%"),
    sensor("soil_2", MetricType::SoilMoisture, "%"),
    sensor("soil_3", MetricType::SoilMoisture, "%"),
    sensor("soil_4", MetricType::SoilMoisture, "%"),
    sensor("soil_5", MetricType::SoilMoisture, "%"),
    sensor("soil_6", MetricType::SoilMoisture, "%"),
    sensor("soil_7", MetricType::SoilMoisture, "%"),
    sensor("soil_8", MetricType::SoilMoisture, "%"),
    sensor("soil_9", MetricType::SoilMoisture, "%"),
    sensor("soil_10", MetricType::SoilMoisture, "%"),
    sensor("soil_11", MetricType::SoilMoisture, "%"),
    sensor("soil_12", MetricType::SoilMoisture, "%"),
    sensor("soil_13", MetricType::SoilMoisture, "%"),
    sensor("soil_14", MetricType::SoilMoisture, "%"),
    sensor("soil_15", MetricType::SoilMoisture, "%"),
    sensor("soil_16", MetricType::SoilMoisture, "%"),
];

impl NodeKind {
    /// Every channel a node of this kind has.
    pub fn channels(self) -> &'static [ChannelSpec] {
        match self {
            NodeKind::Ph => PH_CHANNELS,
            NodeKind::Ec => EC_CHANNELS,
            NodeKind::Climate => CLIMATE_CHANNELS,
            NodeKind::Irrigation => IRRIGATION_CHANNELS,
            NodeKind::Light => LIGHT_CHANNELS,
        }
    }
}

/// One simulated node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSpec {
    /// 0-based position in the layout.
    pub index: usize,
    pub uid: String,
    pub zone: String,
    pub kind: NodeKind,
    /// The kind's channels, then the node's soil probes.
    channels: Vec<ChannelSpec>,
}

impl NodeSpec {
    pub fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    /// The channel called `name`, if this node has it.
    pub fn channel(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.channel == name)
    }
}

/// Every zone and node the simulator runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Zone uids, `zn-1` first.
    pub zones: Vec<String>,
    pub nodes: Vec<NodeSpec>,
}

/// The layout for the settings' zone and node counts.
pub fn layout(sim: &SimSettings) -> Layout {
    build(sim.zones, sim.nodes, sim.probes)
}

fn build(zones: usize, nodes: usize, probes: usize) -> Layout {
    let probes = &PROBE_CHANNELS[..probes.min(PROBE_CHANNELS.len())];
    let zones = zones.max(1);
    Layout {
        zones: (1..=zones).map(|z| format!("zn-{z}")).collect(),
        nodes: (0..nodes)
            .map(|i| {
                let kind = NodeKind::ALL[(i / zones) % NodeKind::ALL.len()];
                NodeSpec {
                    index: i,
                    uid: format!("nd-{}-{}", kind.as_str(), i + 1),
                    zone: format!("zn-{}", i % zones + 1),
                    kind,
                    channels: [kind.channels(), probes].concat(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_matches_the_documented_uids() {
        let l = build(3, 20, 0);
        assert_eq!(l.zones, ["zn-1", "zn-2", "zn-3"]);
        assert_eq!(l.nodes.len(), 20);
        let pairs: Vec<(&str, &str)> = l
            .nodes
            .iter()
            .map(|n| (n.uid.as_str(), n.zone.as_str()))
            .collect();
        assert_eq!(
            &pairs[..7],
            &[
                ("nd-ph-1", "zn-1"),
                ("nd-ph-2", "zn-2"),
                ("nd-ph-3", "zn-3"),
                ("nd-ec-4", "zn-1"),
                ("nd-ec-5", "zn-2"),
                ("nd-ec-6", "zn-3"),
                ("nd-climate-7", "zn-1"),
            ]
        );
        assert_eq!(pairs[9], ("nd-irrigation-10", "zn-1"));
        assert_eq!(pairs[12], ("nd-light-13", "zn-1"));
        assert_eq!(pairs[15], ("nd-ph-16", "zn-1"));
        assert_eq!(pairs[19], ("nd-ec-20", "zn-2"));
    }

    #[test]
    fn every_zone_gets_every_kind_when_there_are_enough_nodes() {
        let l = build(3, 15, 0);
        for zone in &l.zones {
            for kind in NodeKind::ALL {
                assert_eq!(
                    l.nodes
                        .iter()
                        .filter(|n| &n.zone == zone && n.kind == kind)
                        .count(),
                    1,
                    "{zone} {kind:?}"
                );
            }
        }
    }

    #[test]
    fn small_and_odd_layouts() {
        let l = build(1, 3, 0);
        assert_eq!(l.zones, ["zn-1"]);
        let uids: Vec<&str> = l.nodes.iter().map(|n| n.uid.as_str()).collect();
        assert_eq!(uids, ["nd-ph-1", "nd-ec-2", "nd-climate-3"]);
        let l = build(3, 5, 0);
        let uids: Vec<&str> = l.nodes.iter().map(|n| n.uid.as_str()).collect();
        assert_eq!(
            uids,
            ["nd-ph-1", "nd-ph-2", "nd-ph-3", "nd-ec-4", "nd-ec-5"]
        );
    }

    #[test]
    fn channels_per_kind() {
        let names = |k: NodeKind| -> Vec<&str> { k.channels().iter().map(|c| c.channel).collect() };
        assert_eq!(names(NodeKind::Ph), ["ph_sensor", "pump_acid", "pump_base"]);
        assert_eq!(
            names(NodeKind::Ec),
            ["ec_sensor", "pump_nutrients", "pump_dilution"]
        );
        assert_eq!(names(NodeKind::Climate), ["temp_air", "humidity", "co2"]);
        assert_eq!(
            names(NodeKind::Irrigation),
            ["pump_irrigation", "water_level", "flow"]
        );
        assert_eq!(names(NodeKind::Light), ["light", "light_sensor"]);
        for kind in NodeKind::ALL {
            for c in kind.channels() {
                // Sensors report a metric with a unit; actuators neither.
                assert_eq!(
                    c.channel_type == ChannelType::Sensor,
                    c.metric_type.is_some() && c.unit.is_some(),
                    "{}",
                    c.channel
                );
            }
        }
        let probed = build(1, 1, 3);
        let names: Vec<&str> = probed.nodes[0]
            .channels()
            .iter()
            .map(|c| c.channel)
            .collect();
        assert_eq!(
            names,
            [
                "ph_sensor",
                "pump_acid",
                "pump_base",
                "soil_1",
                "soil_2",
                "soil_3"
            ]
        );
        assert_eq!(
            probed.nodes[0]
                .channel("soil_2")
                .and_then(|c| c.metric_type),
            Some(MetricType::SoilMoisture)
        );
        let ph = NodeKind::Ph.channels()[0];
        assert_eq!(
            (ph.metric_type, ph.unit),
            (Some(MetricType::Ph), Some("pH"))
        );
    }
}
