//! node-sim's own settings (`SIM_*`), read from the environment next to the
//! shared [`common::settings::Settings`] and validated before anything starts.
//!
//! This file holds the settings and their defaults; the checks are in
//! `validate.rs`, the broker list and which node goes where in `brokers.rs`.

mod brokers;
#[cfg(test)]
mod tests;
mod validate;

use common::settings::de_from_str;
use secrecy::SecretString;
use serde::Deserialize;

pub use brokers::{broker_for, brokers_for};
pub use validate::{MAX_RESPONSE_DELAY_MS, check_delay, check_probability};

/// How the simulated nodes behave (`SIM_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimMode {
    /// Seeded in the database, placed in `SIM_GREENHOUSE`'s zones from the
    /// start, moved with `config/update`, signed as `proto::signing` signs:
    /// the fleet of the failover benchmarks and most tests.
    #[default]
    Classic,
    /// The hydro2.0 firmware: unbound first boot, time sync, hello,
    /// NodeConfig binding and moves, cJSON-exact HMAC (see [`crate::firmware`]).
    Firmware,
}

impl std::str::FromStr for SimMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "classic" => Ok(SimMode::Classic),
            "firmware" => Ok(SimMode::Firmware),
            other => Err(format!("`{other}` is not a mode (classic or firmware)")),
        }
    }
}

/// The most soil probes a node carries (`SIM_PROBES`).
pub const MAX_PROBES: usize = crate::layout::PROBE_CHANNELS.len();

/// The shortest telemetry or heartbeat interval: below this a few hundred
/// nodes would saturate a broker for no realism gained.
pub const MIN_INTERVAL_MS: u64 = 10;

/// What the simulator simulates and how badly it behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SimSettings {
    /// `SIM_GREENHOUSE`: the greenhouse uid in every topic; default `gh-1`.
    #[serde(rename = "sim_greenhouse")]
    pub greenhouse: String,
    /// `SIM_ZONES`: zones `zn-1`..`zn-N`; default 3.
    #[serde(rename = "sim_zones")]
    pub zones: usize,
    /// `SIM_NODES`: how many nodes, spread over the zones (see
    /// [`crate::layout`]); default 20.
    #[serde(rename = "sim_nodes")]
    pub nodes: usize,
    /// `SIM_TELEMETRY_INTERVAL_MS`: each node's telemetry period; default 5000.
    #[serde(rename = "sim_telemetry_interval_ms")]
    pub telemetry_interval_ms: u64,
    /// `SIM_HEARTBEAT_INTERVAL_MS`: each node's heartbeat period; default 15000.
    #[serde(rename = "sim_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// `SIM_SEED_DB`: upsert the greenhouse, zones, nodes and channels into
    /// PostgreSQL at start (default false). Without it node-sim needs no
    /// database.
    #[serde(rename = "sim_seed_db")]
    pub seed_db: bool,
    /// `SIM_SEED_RECIPE`: with `SIM_SEED_DB`, also start the demo recipe
    /// (see [`crate::demo_recipe`]) on every zone that has none, so that
    /// automation-engine and scheduler have work in `make up`. Default false.
    #[serde(rename = "sim_seed_recipe")]
    pub seed_recipe: bool,
    /// `SIM_DROP_RESPONSES`: probability (0..=1) that a command gets no
    /// response at all; default 0.
    #[serde(rename = "sim_drop_responses")]
    pub drop_responses: f64,
    /// `SIM_DUPLICATE_RESPONSES`: probability (0..=1) that a response is sent
    /// twice; default 0.
    #[serde(rename = "sim_duplicate_responses")]
    pub duplicate_responses: f64,
    /// `SIM_RESPONSE_DELAY_MS`: delay before every response; default 0.
    #[serde(rename = "sim_response_delay_ms")]
    pub response_delay_ms: u64,
    /// `SIM_BROKER_URL`: the broker the nodes connect to; default
    /// `mqtt://MQTT_HOST:MQTT_PORT`.
    #[serde(rename = "sim_broker_url")]
    pub broker_url: Option<String>,
    /// `SIM_BROKER_URLS`: comma-separated `mqtt://host:port` list; node `i`
    /// connects to entry `i % n`, so a fleet spreads over several brokers.
    /// Wins over `SIM_BROKER_URL` when set.
    #[serde(rename = "sim_broker_urls")]
    pub broker_urls: Option<String>,
    /// `SIM_FALLBACK_AFTER_MS`: how long a node keeps trying its broker
    /// before it tries its fallback brokers (then each fallback as long);
    /// default 2000.
    #[serde(rename = "sim_fallback_after_ms")]
    pub fallback_after_ms: u64,
    /// `SIM_PROBES`: soil-moisture probes every node carries besides its
    /// kind's channels, 0 (default) to [`MAX_PROBES`] (see [`crate::layout`]).
    #[serde(rename = "sim_probes")]
    pub probes: usize,
    /// `SIM_TCP_NODELAY`: send each packet at once (true, default) or let the kernel
    /// gather a node's back-to-back readings into one segment (false: Nagle,
    /// as the lwIP stack of the ESP32 firmware does; a benchmark's setting).
    #[serde(rename = "sim_tcp_nodelay")]
    pub tcp_nodelay: bool,
    /// `SIM_MODE`: `classic` (default) or `firmware` (see [`SimMode`]). In
    /// firmware mode `SIM_SEED_DB` seeds the greenhouse and zones only: the
    /// nodes register themselves with their hello.
    #[serde(rename = "sim_mode", deserialize_with = "de_from_str")]
    pub mode: SimMode,
    /// `SIM_HARDWARE_SEED` (firmware mode): node `i`'s hardware id is
    /// `esp32-` + the first 12 hex digits of SHA-256(`{seed}:{i}`); the
    /// same seed gives the same ids on every run. Default `node-sim`.
    #[serde(rename = "sim_hardware_seed")]
    pub hardware_seed: String,
    /// `SIM_STATE_DIR` (firmware mode): a directory where each node saves
    /// the NodeConfig it runs (`{hardware_id}.json`, secret included, as
    /// NVS holds it), so a restarted simulator keeps its bindings. Unset:
    /// every run boots unbound.
    #[serde(rename = "sim_state_dir")]
    pub state_dir: Option<std::path::PathBuf>,
    /// `SIM_TIME_RETRY_MS` (firmware mode): how often a node repeats its
    /// `hydro/time/request` while unanswered. Default 5000.
    #[serde(rename = "sim_time_retry_ms")]
    pub time_retry_ms: u64,
    /// `SIM_FW_APPLY_MQTT_ONLY` (firmware mode): apply a pushed NodeConfig
    /// that differs from the running one only in `mqtt`/`wifi`. The
    /// firmware does not (node_config_handler.c skips it as unchanged and
    /// just reports), so a move by NodeConfig alone is ignored; default false.
    #[serde(rename = "sim_fw_apply_mqtt_only")]
    pub fw_apply_mqtt_only: bool,
    /// `MQTT_PROVISION_USER` (firmware mode): the login of unbound nodes;
    /// default `hydro-provision`.
    pub mqtt_provision_user: String,
    /// `MQTT_PROVISION_PASS` (firmware mode): its password. Unset: unbound
    /// nodes log in with `MQTT_USER` / `MQTT_PASS`.
    pub mqtt_provision_pass: Option<SecretString>,
    /// `SIM_API_TOKEN`: the bearer token the simulator's writes (`PUT
    /// /sim/faults`) demand, and its reads too when `HTTP_READS_REQUIRE_TOKEN`
    /// is true. Unset = no auth (warned; refused with `HYDRO_ENV=production`).
    #[serde(rename = "sim_api_token")]
    pub api_token: Option<SecretString>,
}

impl SimSettings {
    /// The provision login, when its password is set.
    pub fn provision_login(&self) -> Option<(String, SecretString)> {
        self.mqtt_provision_pass
            .clone()
            .map(|pass| (self.mqtt_provision_user.clone(), pass))
    }
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            greenhouse: "gh-1".into(),
            zones: 3,
            nodes: 20,
            telemetry_interval_ms: 5_000,
            heartbeat_interval_ms: 15_000,
            seed_db: false,
            seed_recipe: false,
            drop_responses: 0.0,
            duplicate_responses: 0.0,
            response_delay_ms: 0,
            broker_url: None,
            broker_urls: None,
            fallback_after_ms: 2_000,
            probes: 0,
            tcp_nodelay: true,
            mode: SimMode::Classic,
            hardware_seed: "node-sim".into(),
            state_dir: None,
            time_retry_ms: 5_000,
            fw_apply_mqtt_only: false,
            mqtt_provision_user: "hydro-provision".into(),
            mqtt_provision_pass: None,
            api_token: None,
        }
    }
}

common::durations!(SimSettings {
    telemetry_interval: from_millis(telemetry_interval_ms),
    heartbeat_interval: from_millis(heartbeat_interval_ms),
    fallback_after: from_millis(fallback_after_ms),
    time_retry: from_millis(time_retry_ms),
});
