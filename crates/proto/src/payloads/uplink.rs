//! What nodes send: telemetry (metrics and their physical ranges), status,
//! last will, heartbeat, errors, events, hello.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;

crate::text_enum! {
    /// The metric kinds a node may report; the text is the wire name, as
    /// stored in `telemetry_samples.metric_type`. `ALL`: every metric, for
    /// tables and tests.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum MetricType {
        Ph => "PH",
        Ec => "EC",
        Temperature => "TEMPERATURE",
        Humidity => "HUMIDITY",
        Co2 => "CO2",
        LightIntensity => "LIGHT_INTENSITY",
        WaterLevel => "WATER_LEVEL",
        WaterLevelSwitch => "WATER_LEVEL_SWITCH",
        SoilMoisture => "SOIL_MOISTURE",
        SoilTemp => "SOIL_TEMP",
        WindSpeed => "WIND_SPEED",
        OutsideTemp => "OUTSIDE_TEMP",
        FlowRate => "FLOW_RATE",
        PumpCurrent => "PUMP_CURRENT",
    }
}

// ---------------------------------------------------------------- physical ranges
// (helper "readings", issue 11: one table, documented in docs/protocol.md §
// "Readings the logger refuses"; keep it in step with that table.)

impl MetricType {
    /// The values a working sensor of this metric can report, bounds
    /// included, in the contract's unit. A reading outside is a broken probe
    /// or a forgery, never a measurement: history-logger refuses it
    /// (`out_of_range`).
    pub fn physical_range(self) -> std::ops::RangeInclusive<f64> {
        match self {
            // pH scale.
            MetricType::Ph => 0.0..=14.0,
            // mS/cm; sea water is about 55, nutrient solutions stay below 5.
            MetricType::Ec => 0.0..=20.0,
            // °C, the span of the usual probes (DS18B20, SHT3x, DHT22).
            MetricType::Temperature | MetricType::SoilTemp => -40.0..=125.0,
            // °C, outdoors anywhere plants are grown.
            MetricType::OutsideTemp => -60.0..=70.0,
            // % relative humidity, % volumetric water content.
            MetricType::Humidity | MetricType::SoilMoisture => 0.0..=100.0,
            // ppm, the span of NDIR sensors (SCD30, MH-Z19 up to 40 000).
            MetricType::Co2 => 0.0..=40_000.0,
            // lux; full sunlight is about 120 000.
            MetricType::LightIntensity => 0.0..=200_000.0,
            // cm of a tank (or % full): 10 m at most.
            MetricType::WaterLevel => 0.0..=1_000.0,
            // A float switch: 0 or 1.
            MetricType::WaterLevelSwitch => 0.0..=1.0,
            // m/s; the strongest gust ever measured is 113.
            MetricType::WindSpeed => 0.0..=120.0,
            // l/min.
            MetricType::FlowRate => 0.0..=1_000.0,
            // mA (the firmware's pump driver reports milliamps).
            MetricType::PumpCurrent => 0.0..=10_000.0,
        }
    }
}

// ---------------------------------------------------------------- end of physical ranges

/// `…/{channel}/telemetry`: one reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub metric_type: MetricType,
    pub value: f64,
    /// Seconds since the epoch, as the node's clock saw it.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrections_allowed: Option<bool>,
    /// TDS derived by an EC node (firmware §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tds: Option<f64>,
    /// Sensor-side health context (`status`, `error_count`), as the node sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Map<String, Value>>,
}

impl Telemetry {
    /// Decodes and validates; `received_at` (seconds) replaces a `ts` from a
    /// node whose clock is not set.
    pub fn decode(bytes: &[u8], received_at: i64) -> Result<Self, PayloadError> {
        let mut t: Telemetry = decode(bytes)?;
        if !t.value.is_finite() {
            return Err(PayloadError::field("value", "must be a finite number"));
        }
        if t.unit.as_ref().is_some_and(|u| u.chars().count() > 32) {
            return Err(PayloadError::field("unit", "longer than 32 characters"));
        }
        if t.ts < MIN_VALID_TS {
            t.ts = received_at;
        }
        Ok(t)
    }
}

crate::text_enum! {
    /// ONLINE, OFFLINE, or RESTARTING (announced by a node about to reboot);
    /// the text is the value stored in `nodes.status`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum NodeState {
        Online => "ONLINE",
        Offline => "OFFLINE",
        Restarting => "RESTARTING",
    }
}

/// `…/status`, retained: the node's own word on its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub status: NodeState,
    /// Seconds since the epoch.
    pub ts: i64,
}

impl Status {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        decode(bytes)
    }
}

/// The payload the broker publishes on `…/lwt` when a node vanishes.
pub const LWT_PAYLOAD: &str = "offline";

/// `…/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Seconds since boot.
    pub uptime: u64,
    /// Bytes.
    pub free_heap: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i32>,
    /// The application firmware version the node reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw_version: Option<String>,
}

impl Heartbeat {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let h: Heartbeat = decode(bytes)?;
        if h.rssi.is_some_and(|r| !(-100..=0).contains(&r)) {
            return Err(PayloadError::field("rssi", "must be between -100 and 0"));
        }
        Ok(h)
    }
}

/// Severity of a node error report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorLevel {
    Error,
    Warning,
    Info,
}

/// `…/error`: a node reports a fault of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeError {
    pub level: ErrorLevel,
    pub component: String,
    pub error_code: String,
    pub message: String,
    /// Milliseconds since the epoch, when the node has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

impl NodeError {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        decode(bytes)
    }
}

/// `…/{channel}/event`: something happened on a node, e.g. a level switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub event_code: String,
    /// Whatever else the node sent, kept for the zone event's payload.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl NodeEvent {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let e: NodeEvent = decode(bytes)?;
        if e.event_code.trim().is_empty() {
            return Err(PayloadError::field("event_code", "must not be empty"));
        }
        Ok(e)
    }

    /// The zone event type: upper-cased, every run of characters other than
    /// A–Z and 0–9 turned into one `_` (`level switch-changed` →
    /// `LEVEL_SWITCH_CHANGED`).
    pub fn zone_event_type(&self) -> String {
        let mut out = String::with_capacity(self.event_code.len());
        let mut in_run = false;
        for c in self.event_code.chars().flat_map(char::to_uppercase) {
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                out.push(c);
                in_run = false;
            } else if !in_run {
                out.push('_');
                in_run = true;
            }
        }
        out
    }
}

/// `node_hello`: a node introduces itself (first boot, or after a reset).
/// The contract leaves its shape open; this follows the hydro2.0 firmware:
/// `hardware_id` is required, the rest is optional and unknown fields are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHello {
    pub hardware_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw_version: Option<String>,
    /// What the node can do: sensor kinds, and [`CAPABILITY_CONFIG_UPDATE`]
    /// when it follows `nodes/{node}/config/update` with fallbacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The capability a node declares (hello `capabilities`, or NodeConfig
/// `capabilities`) when it can be moved with `nodes/{node}/config/update`.
/// The hydro2.0 firmware does not declare it: it is moved by a NodeConfig push.
pub const CAPABILITY_CONFIG_UPDATE: &str = "config_update";

impl NodeHello {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let h: NodeHello = decode(bytes)?;
        if h.hardware_id.trim().is_empty() {
            return Err(PayloadError::field("hardware_id", "must not be empty"));
        }
        Ok(h)
    }
}
