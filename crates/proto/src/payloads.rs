//! The JSON payloads of the contract (section 3), each with its validation.
//!
//! Decoding is strict where the contract is strict (telemetry rejects unknown
//! fields) and lenient where old firmware may add fields (responses, hello).
//! Every decoder returns a [`PayloadError`] whose `reason()` is a bounded
//! label for the `…_dropped_total{reason}` counters.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest uplink payload accepted, in bytes. An ESP32 node never sends more
/// than a few hundred bytes; anything bigger is a bug or an attack.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Telemetry `ts` below this (seconds) is a node without a synced clock: the
/// receive time replaces it.
pub const MIN_VALID_TS: i64 = 1_000_000_000;

static CMD_ID_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_-]{1,128}$").expect("valid regex"));

/// Why a payload was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit")]
    TooLarge(usize),
    #[error("payload is not valid JSON for this message: {0}")]
    Json(String),
    #[error("invalid field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl PayloadError {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::TooLarge(_) => "oversized",
            PayloadError::Json(_) => "invalid_json",
            PayloadError::Field { .. } => "invalid_field",
        }
    }

    fn field(field: &'static str, problem: impl Into<String>) -> Self {
        PayloadError::Field {
            field,
            problem: problem.into(),
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, PayloadError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| PayloadError::Json(e.to_string()))
}

/// The metric kinds a node may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MetricType {
    Ph,
    Ec,
    Temperature,
    Humidity,
    Co2,
    LightIntensity,
    WaterLevel,
    WaterLevelSwitch,
    SoilMoisture,
    SoilTemp,
    WindSpeed,
    OutsideTemp,
    FlowRate,
    PumpCurrent,
}

impl MetricType {
    /// The wire name, as stored in `telemetry_samples.metric_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Ph => "PH",
            MetricType::Ec => "EC",
            MetricType::Temperature => "TEMPERATURE",
            MetricType::Humidity => "HUMIDITY",
            MetricType::Co2 => "CO2",
            MetricType::LightIntensity => "LIGHT_INTENSITY",
            MetricType::WaterLevel => "WATER_LEVEL",
            MetricType::WaterLevelSwitch => "WATER_LEVEL_SWITCH",
            MetricType::SoilMoisture => "SOIL_MOISTURE",
            MetricType::SoilTemp => "SOIL_TEMP",
            MetricType::WindSpeed => "WIND_SPEED",
            MetricType::OutsideTemp => "OUTSIDE_TEMP",
            MetricType::FlowRate => "FLOW_RATE",
            MetricType::PumpCurrent => "PUMP_CURRENT",
        }
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

    /// Every metric, for tables and tests.
    pub const ALL: [MetricType; 14] = [
        MetricType::Ph,
        MetricType::Ec,
        MetricType::Temperature,
        MetricType::Humidity,
        MetricType::Co2,
        MetricType::LightIntensity,
        MetricType::WaterLevel,
        MetricType::WaterLevelSwitch,
        MetricType::SoilMoisture,
        MetricType::SoilTemp,
        MetricType::WindSpeed,
        MetricType::OutsideTemp,
        MetricType::FlowRate,
        MetricType::PumpCurrent,
    ];
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

/// `…/{channel}/command`: what the backend asks a node to do, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub cmd_id: String,
    pub cmd: String,
    pub params: Map<String, Value>,
    /// Seconds since the epoch when the backend signed it.
    pub ts: i64,
    /// Lowercase hex HMAC-SHA256, see [`crate::signing`].
    pub sig: String,
}

impl Command {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let c: Command = decode(bytes)?;
        validate_cmd_id(&c.cmd_id)?;
        validate_cmd_name(&c.cmd)?;
        if c.sig.len() != 64
            || !c
                .sig
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(PayloadError::field(
                "sig",
                "must be 64 lowercase hex characters",
            ));
        }
        Ok(c)
    }
}

/// Checks a client-chosen or generated command id against the contract.
pub fn validate_cmd_id(cmd_id: &str) -> Result<(), PayloadError> {
    if CMD_ID_RE.is_match(cmd_id) {
        Ok(())
    } else {
        Err(PayloadError::field(
            "cmd_id",
            "must match ^[A-Za-z0-9_-]{1,128}$",
        ))
    }
}

/// Checks a command name: 1 to 64 characters.
pub fn validate_cmd_name(cmd: &str) -> Result<(), PayloadError> {
    let n = cmd.chars().count();
    if (1..=64).contains(&n) {
        Ok(())
    } else {
        Err(PayloadError::field("cmd", "must be 1 to 64 characters"))
    }
}

/// The statuses a node may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseStatus {
    Ack,
    Done,
    Error,
    Invalid,
    Busy,
    NoEffect,
    Timeout,
}

/// `…/{channel}/command_response`: a node's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub cmd_id: String,
    pub status: ResponseStatus,
    /// Milliseconds since the epoch.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CommandResponse {
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let r: CommandResponse = decode(bytes)?;
        validate_cmd_id(&r.cmd_id)?;
        Ok(r)
    }
}

/// ONLINE, OFFLINE, or RESTARTING (announced by a node about to reboot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    Online,
    Offline,
    Restarting,
}

impl NodeState {
    /// The value stored in `nodes.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "ONLINE",
            NodeState::Offline => "OFFLINE",
            NodeState::Restarting => "RESTARTING",
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_minimal_and_full() {
        let t =
            Telemetry::decode(br#"{"metric_type":"PH","value":6.5,"ts":1737979200}"#, 0).unwrap();
        assert_eq!(t.metric_type, MetricType::Ph);
        assert_eq!(t.ts, 1_737_979_200);
        let full = br#"{"metric_type":"WATER_LEVEL","value":0.4,"ts":1737979200,"unit":"m","raw":1023,"stub":false,"stable":true,"flow_active":false,"corrections_allowed":true}"#;
        assert_eq!(Telemetry::decode(full, 0).unwrap().raw, Some(1023));
    }

    #[test]
    fn telemetry_rejections() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"metric_type":"PH","value":6.5,"ts":1737979200,"x":1}"#, "invalid_json"),
            (br#"{"metric_type":"PRESSURE","value":6.5,"ts":1737979200}"#, "invalid_json"),
            (br#"{"metric_type":"PH","value":"6.5","ts":1737979200}"#, "invalid_json"),
            (br#"{"metric_type":"PH","ts":1737979200}"#, "invalid_json"),
            (br#"{"metric_type":"PH","value":6.5,"ts":1.5}"#, "invalid_json"),
            (b"not json", "invalid_json"),
            (br#"{"metric_type":"PH","value":6.5,"ts":1737979200,"unit":"123456789012345678901234567890123"}"#, "invalid_field"),
        ];
        for (bytes, reason) in cases {
            let err = Telemetry::decode(bytes, 0).unwrap_err();
            assert_eq!(err.reason(), *reason, "{}", String::from_utf8_lossy(bytes));
        }
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            Telemetry::decode(&big, 0).unwrap_err().reason(),
            "oversized"
        );
    }

    #[test]
    fn telemetry_non_finite_value_is_refused() {
        // JSON has no NaN literal, but a number too large for f64 becomes infinite.
        let err = Telemetry::decode(br#"{"metric_type":"PH","value":1e400,"ts":1737979200}"#, 0);
        assert!(err.is_err());
    }

    #[test]
    fn telemetry_unset_clock_gets_receive_time() {
        let t = Telemetry::decode(
            br#"{"metric_type":"EC","value":1.2,"ts":42}"#,
            1_800_000_000,
        )
        .unwrap();
        assert_eq!(t.ts, 1_800_000_000);
    }

    #[test]
    fn command_validation() {
        let ok = format!(
            r#"{{"cmd_id":"c-1","cmd":"run_pump","params":{{"duration_ms":30000}},"ts":1737979200,"sig":"{}"}}"#,
            "a".repeat(64)
        );
        assert!(Command::decode(ok.as_bytes()).is_ok());
        let bad_id = ok.replace("c-1", "c 1");
        assert_eq!(
            Command::decode(bad_id.as_bytes()).unwrap_err(),
            PayloadError::field("cmd_id", "must match ^[A-Za-z0-9_-]{1,128}$")
        );
        let bad_sig = ok.replace(&"a".repeat(64), &"A".repeat(64));
        assert!(Command::decode(bad_sig.as_bytes()).is_err());
        let no_sig = r#"{"cmd_id":"c-1","cmd":"run_pump","params":{},"ts":1737979200}"#;
        assert!(Command::decode(no_sig.as_bytes()).is_err());
        assert!(validate_cmd_id(&"x".repeat(128)).is_ok());
        assert!(validate_cmd_id(&"x".repeat(129)).is_err());
        assert!(validate_cmd_name("").is_err());
    }

    #[test]
    fn response_statuses() {
        for s in [
            "ACK",
            "DONE",
            "ERROR",
            "INVALID",
            "BUSY",
            "NO_EFFECT",
            "TIMEOUT",
        ] {
            let r = format!(r#"{{"cmd_id":"c1","status":"{s}","ts":1737979200000}}"#);
            assert!(CommandResponse::decode(r.as_bytes()).is_ok(), "{s}");
        }
        assert!(CommandResponse::decode(br#"{"cmd_id":"c1","status":"SENT","ts":1}"#).is_err());
    }

    #[test]
    fn heartbeat_rssi_bounds() {
        assert!(Heartbeat::decode(br#"{"uptime":3600,"free_heap":102000,"rssi":-62}"#).is_ok());
        assert!(Heartbeat::decode(br#"{"uptime":3600,"free_heap":102000}"#).is_ok());
        assert!(Heartbeat::decode(br#"{"uptime":3600,"free_heap":102000,"rssi":5}"#).is_err());
        assert!(Heartbeat::decode(br#"{"uptime":-1,"free_heap":102000}"#).is_err());
    }

    #[test]
    fn event_type_normalisation() {
        let e = NodeEvent::decode(br#"{"event_code":"level_switch_changed","level":1}"#).unwrap();
        assert_eq!(e.zone_event_type(), "LEVEL_SWITCH_CHANGED");
        assert_eq!(e.fields["level"], 1);
        let e = NodeEvent::decode(br#"{"event_code":"pump--over  current!"}"#).unwrap();
        assert_eq!(e.zone_event_type(), "PUMP_OVER_CURRENT_");
        assert!(NodeEvent::decode(br#"{"event_code":" "}"#).is_err());
    }

    #[test]
    fn status_error_hello_config() {
        assert_eq!(
            Status::decode(br#"{"status":"ONLINE","ts":1710001555}"#)
                .unwrap()
                .status,
            NodeState::Online
        );
        assert!(Status::decode(br#"{"status":"SLEEPING","ts":1}"#).is_err());
        assert!(
            NodeError::decode(
                br#"{"level":"WARNING","component":"ph","error_code":"E1","message":"drift"}"#
            )
            .is_ok()
        );
        assert!(
            NodeError::decode(
                br#"{"level":"FATAL","component":"ph","error_code":"E1","message":"m"}"#
            )
            .is_err()
        );
        let h = NodeHello::decode(
            br#"{"hardware_id":"esp32-aa","node_type":"ph","capabilities":["ph"]}"#,
        )
        .unwrap();
        assert_eq!(h.capabilities, ["ph"]);
        assert!(
            ConfigUpdate::decode(
                br#"{"mqtt_broker":"tcp://x","broker_id":"m","fallback":[],"ts":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn physical_ranges_hold_the_specified_bounds() {
        assert_eq!(MetricType::Ph.physical_range(), 0.0..=14.0);
        assert_eq!(MetricType::Ec.physical_range(), 0.0..=20.0);
        assert_eq!(MetricType::Temperature.physical_range(), -40.0..=125.0);
        assert_eq!(MetricType::Humidity.physical_range(), 0.0..=100.0);
        for m in MetricType::ALL {
            let r = m.physical_range();
            assert!(r.start() < r.end(), "{m:?}");
            assert!(
                !r.contains(&f64::NAN) && !r.contains(&f64::INFINITY),
                "{m:?}"
            );
        }
    }
}
