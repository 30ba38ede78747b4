//! node-sim's own settings (`SIM_*`), read from the environment next to the
//! shared [`common::settings::Settings`] and validated before anything starts.

use std::collections::HashMap;
use std::time::Duration;

use common::settings::{
    SettingsError, de_bool, de_from_str, de_opt_from_str, de_opt_secret, from_env,
};
use secrecy::SecretString;
use serde::Deserialize;

fn default_greenhouse() -> String {
    "gh-1".into()
}
const fn default_zones() -> usize {
    3
}
const fn default_nodes() -> usize {
    20
}
const fn default_telemetry_interval_ms() -> u64 {
    5_000
}
const fn default_heartbeat_interval_ms() -> u64 {
    15_000
}
const fn default_fallback_after_ms() -> u64 {
    2_000
}
const fn default_tcp_nodelay() -> bool {
    true
}
fn default_hardware_seed() -> String {
    "node-sim".into()
}
const fn default_time_retry_ms() -> u64 {
    5_000
}

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
pub struct SimSettings {
    /// `SIM_GREENHOUSE`: the greenhouse uid in every topic.
    #[serde(rename = "sim_greenhouse", default = "default_greenhouse")]
    pub greenhouse: String,
    /// `SIM_ZONES`: zones `zn-1`..`zn-N`.
    #[serde(
        rename = "sim_zones",
        default = "default_zones",
        deserialize_with = "de_from_str"
    )]
    pub zones: usize,
    /// `SIM_NODES`: how many nodes, spread over the zones (see [`crate::layout`]).
    #[serde(
        rename = "sim_nodes",
        default = "default_nodes",
        deserialize_with = "de_from_str"
    )]
    pub nodes: usize,
    /// `SIM_TELEMETRY_INTERVAL_MS`: each node's telemetry period.
    #[serde(
        rename = "sim_telemetry_interval_ms",
        default = "default_telemetry_interval_ms",
        deserialize_with = "de_from_str"
    )]
    pub telemetry_interval_ms: u64,
    /// `SIM_HEARTBEAT_INTERVAL_MS`: each node's heartbeat period.
    #[serde(
        rename = "sim_heartbeat_interval_ms",
        default = "default_heartbeat_interval_ms",
        deserialize_with = "de_from_str"
    )]
    pub heartbeat_interval_ms: u64,
    /// `SIM_SEED_DB`: upsert the greenhouse, zones, nodes and channels into
    /// PostgreSQL at start. Without it node-sim needs no database.
    #[serde(rename = "sim_seed_db", default, deserialize_with = "de_bool")]
    pub seed_db: bool,
    /// `SIM_SEED_RECIPE`: with `SIM_SEED_DB`, also start the demo recipe
    /// (see [`crate::demo_recipe`]) on every zone that has none, so that
    /// automation-engine and scheduler have work in `make up`.
    #[serde(rename = "sim_seed_recipe", default, deserialize_with = "de_bool")]
    pub seed_recipe: bool,
    /// `SIM_DROP_RESPONSES`: probability (0..=1) that a command gets no response at all.
    #[serde(
        rename = "sim_drop_responses",
        default,
        deserialize_with = "de_from_str"
    )]
    pub drop_responses: f64,
    /// `SIM_DUPLICATE_RESPONSES`: probability (0..=1) that a response is sent twice.
    #[serde(
        rename = "sim_duplicate_responses",
        default,
        deserialize_with = "de_from_str"
    )]
    pub duplicate_responses: f64,
    /// `SIM_RESPONSE_DELAY_MS`: delay before every response.
    #[serde(
        rename = "sim_response_delay_ms",
        default,
        deserialize_with = "de_from_str"
    )]
    pub response_delay_ms: u64,
    /// `SIM_BROKER_URL`: the broker the nodes connect to; default
    /// `mqtt://MQTT_HOST:MQTT_PORT`.
    #[serde(
        rename = "sim_broker_url",
        default,
        deserialize_with = "de_opt_from_str"
    )]
    pub broker_url: Option<String>,
    /// `SIM_BROKER_URLS`: comma-separated `mqtt://host:port` list; node `i`
    /// connects to entry `i % n`, so a fleet spreads over several brokers.
    /// Wins over `SIM_BROKER_URL` when set.
    #[serde(
        rename = "sim_broker_urls",
        default,
        deserialize_with = "de_opt_from_str"
    )]
    pub broker_urls: Option<String>,
    /// `SIM_FALLBACK_AFTER_MS`: how long a node keeps trying its broker
    /// before it tries its fallback brokers (then each fallback as long).
    #[serde(
        rename = "sim_fallback_after_ms",
        default = "default_fallback_after_ms",
        deserialize_with = "de_from_str"
    )]
    pub fallback_after_ms: u64,
    /// `SIM_PROBES`: soil-moisture probes every node carries besides its
    /// kind's channels, 0 to [`MAX_PROBES`] (see [`crate::layout`]).
    #[serde(rename = "sim_probes", default, deserialize_with = "de_from_str")]
    pub probes: usize,
    /// `SIM_TCP_NODELAY`: send each packet at once (true) or let the kernel
    /// gather a node's back-to-back readings into one segment (false: Nagle,
    /// as the lwIP stack of the ESP32 firmware does; a benchmark's setting).
    #[serde(
        rename = "sim_tcp_nodelay",
        default = "default_tcp_nodelay",
        deserialize_with = "de_bool"
    )]
    pub tcp_nodelay: bool,
    /// `SIM_MODE`: `classic` (default) or `firmware` (see [`SimMode`]). In
    /// firmware mode `SIM_SEED_DB` seeds the greenhouse and zones only: the
    /// nodes register themselves with their hello.
    #[serde(rename = "sim_mode", default, deserialize_with = "de_from_str")]
    pub mode: SimMode,
    /// `SIM_HARDWARE_SEED` (firmware mode): node `i`'s hardware id is
    /// `esp32-` + the first 12 hex digits of SHA-256(`{seed}:{i}`); the
    /// same seed gives the same ids on every run. Default `node-sim`.
    #[serde(rename = "sim_hardware_seed", default = "default_hardware_seed")]
    pub hardware_seed: String,
    /// `SIM_STATE_DIR` (firmware mode): a directory where each node saves
    /// the NodeConfig it runs (`{hardware_id}.json`, secret included, as
    /// NVS holds it), so a restarted simulator keeps its bindings. Unset:
    /// every run boots unbound.
    #[serde(
        rename = "sim_state_dir",
        default,
        deserialize_with = "de_opt_from_str"
    )]
    pub state_dir: Option<std::path::PathBuf>,
    /// `SIM_TIME_RETRY_MS` (firmware mode): how often a node repeats its
    /// `hydro/time/request` while unanswered. Default 5000.
    #[serde(
        rename = "sim_time_retry_ms",
        default = "default_time_retry_ms",
        deserialize_with = "de_from_str"
    )]
    pub time_retry_ms: u64,
    /// `SIM_FW_APPLY_MQTT_ONLY` (firmware mode): apply a pushed NodeConfig
    /// that differs from the running one only in `mqtt`/`wifi`. The
    /// firmware does not (node_config_handler.c skips it as unchanged and
    /// just reports), so a move by NodeConfig alone is ignored; default false.
    #[serde(
        rename = "sim_fw_apply_mqtt_only",
        default,
        deserialize_with = "de_bool"
    )]
    pub fw_apply_mqtt_only: bool,
    /// `MQTT_PROVISION_USER` (firmware mode): the login of unbound nodes;
    /// default `hydro-provision`.
    #[serde(default = "default_provision_user")]
    pub mqtt_provision_user: String,
    /// `MQTT_PROVISION_PASS` (firmware mode): its password. Unset: unbound
    /// nodes log in with `MQTT_USER` / `MQTT_PASS`.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub mqtt_provision_pass: Option<SecretString>,
    /// `SIM_API_TOKEN`: the bearer token the simulator's writes (`PUT
    /// /sim/faults`) demand, and its reads too when `HTTP_READS_REQUIRE_TOKEN`
    /// is true. Unset = no auth (warned; refused with `HYDRO_ENV=production`).
    #[serde(rename = "sim_api_token", default, deserialize_with = "de_opt_secret")]
    pub api_token: Option<SecretString>,
}

fn default_provision_user() -> String {
    "hydro-provision".into()
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
            greenhouse: default_greenhouse(),
            zones: default_zones(),
            nodes: default_nodes(),
            telemetry_interval_ms: default_telemetry_interval_ms(),
            heartbeat_interval_ms: default_heartbeat_interval_ms(),
            seed_db: false,
            seed_recipe: false,
            drop_responses: 0.0,
            duplicate_responses: 0.0,
            response_delay_ms: 0,
            broker_url: None,
            broker_urls: None,
            fallback_after_ms: default_fallback_after_ms(),
            probes: 0,
            tcp_nodelay: default_tcp_nodelay(),
            mode: SimMode::Classic,
            hardware_seed: default_hardware_seed(),
            state_dir: None,
            time_retry_ms: default_time_retry_ms(),
            fw_apply_mqtt_only: false,
            mqtt_provision_user: default_provision_user(),
            mqtt_provision_pass: None,
            api_token: None,
        }
    }
}

/// The longest response delay accepted, from the environment or `PUT /sim/faults`.
pub const MAX_RESPONSE_DELAY_MS: u64 = 600_000;

/// Checks a probability setting; the error names the setting.
pub fn check_probability(name: &str, p: f64) -> Result<(), String> {
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be a probability between 0 and 1, got {p}"
        ))
    }
}

/// Checks a response delay; the error names the setting.
pub fn check_delay(name: &str, ms: u64) -> Result<(), String> {
    if ms <= MAX_RESPONSE_DELAY_MS {
        Ok(())
    } else {
        Err(format!(
            "{name} must be at most {MAX_RESPONSE_DELAY_MS} ms, got {ms}"
        ))
    }
}

impl SimSettings {
    /// Reads and validates the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_vars(None)
    }

    /// Reads and validates the given variables instead of the environment.
    pub fn from_vars(vars: Option<HashMap<String, String>>) -> Result<Self, SettingsError> {
        let s: SimSettings = from_env(vars)?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every value; the error names the variable to fix.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let uid_ok = !self.greenhouse.is_empty()
            && self.greenhouse.len() <= 64
            && self
                .greenhouse
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let checks = [
            (
                uid_ok,
                "SIM_GREENHOUSE must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `-`"
                    .to_owned(),
            ),
            (
                self.seed_db || !self.seed_recipe,
                "SIM_SEED_RECIPE needs SIM_SEED_DB=true".to_owned(),
            ),
            (self.zones >= 1, "SIM_ZONES must be at least 1".to_owned()),
            (self.nodes >= 1, "SIM_NODES must be at least 1".to_owned()),
            (
                self.telemetry_interval_ms >= MIN_INTERVAL_MS,
                format!("SIM_TELEMETRY_INTERVAL_MS must be at least {MIN_INTERVAL_MS}"),
            ),
            (
                self.fallback_after_ms >= 100,
                "SIM_FALLBACK_AFTER_MS must be at least 100".to_owned(),
            ),
            (
                self.probes <= MAX_PROBES,
                format!("SIM_PROBES must be at most {MAX_PROBES}"),
            ),
            (
                !self.hardware_seed.is_empty(),
                "SIM_HARDWARE_SEED must not be empty".to_owned(),
            ),
            (
                self.time_retry_ms >= 100,
                "SIM_TIME_RETRY_MS must be at least 100".to_owned(),
            ),
            (
                self.mode == SimMode::Classic || !self.seed_recipe,
                "SIM_SEED_RECIPE needs SIM_MODE=classic (firmware nodes are not seeded)".to_owned(),
            ),
            (
                self.heartbeat_interval_ms >= MIN_INTERVAL_MS,
                format!("SIM_HEARTBEAT_INTERVAL_MS must be at least {MIN_INTERVAL_MS}"),
            ),
        ];
        if let Some((_, message)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(SettingsError(message));
        }
        check_probability("SIM_DROP_RESPONSES", self.drop_responses).map_err(SettingsError)?;
        check_probability("SIM_DUPLICATE_RESPONSES", self.duplicate_responses)
            .map_err(SettingsError)?;
        check_delay("SIM_RESPONSE_DELAY_MS", self.response_delay_ms).map_err(SettingsError)?;
        if let Some(url) = &self.broker_url {
            common::mqtt::parse_broker_url(url)
                .map_err(|e| SettingsError(format!("SIM_BROKER_URL: {e}")))?;
        }
        if let Some(list) = &self.broker_urls {
            let urls = split_urls(list);
            if urls.is_empty() {
                return Err(SettingsError(
                    "SIM_BROKER_URLS must list at least one broker URL".into(),
                ));
            }
            for url in urls {
                common::mqtt::parse_broker_url(url)
                    .map_err(|e| SettingsError(format!("SIM_BROKER_URLS: {url}: {e}")))?;
            }
        }
        Ok(())
    }

    /// The brokers the nodes connect to: `SIM_BROKER_URLS`, else the one of
    /// [`SimSettings::broker_url_or`]. Never empty.
    pub fn broker_urls_or(&self, settings: &common::settings::Settings) -> Vec<String> {
        match &self.broker_urls {
            Some(list) if !split_urls(list).is_empty() => {
                split_urls(list).into_iter().map(str::to_owned).collect()
            }
            _ => vec![self.broker_url_or(settings)],
        }
    }

    /// The broker URL: `SIM_BROKER_URL`, else the shared default broker.
    pub fn broker_url_or(&self, settings: &common::settings::Settings) -> String {
        self.broker_url
            .clone()
            .unwrap_or_else(|| settings.mqtt.default_broker_url())
    }

    pub fn telemetry_interval(&self) -> Duration {
        Duration::from_millis(self.telemetry_interval_ms)
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn fallback_after(&self) -> Duration {
        Duration::from_millis(self.fallback_after_ms)
    }

    pub fn time_retry(&self) -> Duration {
        Duration::from_millis(self.time_retry_ms)
    }
}

/// The non-empty entries of a comma-separated list, trimmed.
fn split_urls(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The broker of node `index` (layout order): entry `index % n`.
pub fn broker_for(urls: &[String], index: usize) -> &str {
    &urls[index % urls.len()]
}

/// The broker node `index` starts on and its fallback list: the other
/// entries in order, starting after its own, so the nodes of a broker that
/// dies spread over the others.
pub fn brokers_for(urls: &[String], index: usize) -> (&str, Vec<String>) {
    let n = urls.len();
    let own = index % n;
    let fallback = (1..n).map(|k| urls[(own + k) % n].clone()).collect();
    (&urls[own], fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    use testkit::env_vars as vars;

    #[test]
    fn defaults() {
        let s = SimSettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.greenhouse, "gh-1");
        assert_eq!((s.zones, s.nodes), (3, 20));
        assert_eq!(s.telemetry_interval_ms, 5_000);
        assert_eq!(s.heartbeat_interval_ms, 15_000);
        assert!(!s.seed_db);
        assert_eq!(s.probes, 0);
        assert!(s.tcp_nodelay);
        assert_eq!(s.drop_responses, 0.0);
        assert!(s.broker_url.is_none());
        assert_eq!(s.mode, SimMode::Classic);
        assert_eq!(s.hardware_seed, "node-sim");
        assert!(s.state_dir.is_none());
        assert_eq!(s.time_retry_ms, 5_000);
        assert!(s.api_token.is_none());
        assert!(!s.fw_apply_mqtt_only);
        let shared = common::settings::Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.broker_url_or(&shared), "mqtt://127.0.0.1:1883");
        assert_eq!(s.broker_urls_or(&shared), ["mqtt://127.0.0.1:1883"]);
    }

    #[test]
    fn nodes_spread_over_the_broker_list() {
        let s = SimSettings::from_vars(vars(&[
            (
                "SIM_BROKER_URLS",
                "mqtt://127.0.0.1:1883, mqtt://127.0.0.1:1884,mqtt://127.0.0.1:1885",
            ),
            ("SIM_BROKER_URL", "mqtt://127.0.0.1:1999"),
        ]))
        .unwrap();
        let shared = common::settings::Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
        let urls = s.broker_urls_or(&shared);
        let ports: Vec<&str> = (0..7)
            .map(|i| broker_for(&urls, i).rsplit(':').next().unwrap())
            .collect();
        assert_eq!(
            ports,
            ["1883", "1884", "1885", "1883", "1884", "1885", "1883"]
        );
        let (own, fallback) = brokers_for(&urls, 4);
        assert_eq!(own, "mqtt://127.0.0.1:1884");
        assert_eq!(fallback, ["mqtt://127.0.0.1:1885", "mqtt://127.0.0.1:1883"]);
        // Without the list, every node goes to SIM_BROKER_URL.
        let s =
            SimSettings::from_vars(vars(&[("SIM_BROKER_URL", "mqtt://127.0.0.1:1999")])).unwrap();
        let urls = s.broker_urls_or(&shared);
        assert!((0..4).all(|i| broker_for(&urls, i) == "mqtt://127.0.0.1:1999"));
    }

    #[test]
    fn values_are_read() {
        let s = SimSettings::from_vars(vars(&[
            ("SIM_GREENHOUSE", "gh-test"),
            ("SIM_ZONES", "2"),
            ("SIM_NODES", "7"),
            ("SIM_SEED_DB", "true"),
            ("SIM_DROP_RESPONSES", "0.25"),
            ("SIM_RESPONSE_DELAY_MS", "100"),
            ("SIM_BROKER_URL", "mqtt://127.0.0.1:1884"),
            ("SIM_PROBES", "8"),
            ("SIM_TCP_NODELAY", "false"),
            ("SIM_MODE", "Firmware"),
            ("SIM_HARDWARE_SEED", "bench-a"),
            ("SIM_STATE_DIR", "/tmp/sim-state"),
            ("SIM_TIME_RETRY_MS", "1000"),
            ("SIM_FW_APPLY_MQTT_ONLY", "true"),
        ]))
        .unwrap();
        assert_eq!(s.mode, SimMode::Firmware);
        assert_eq!(s.hardware_seed, "bench-a");
        assert_eq!(
            s.state_dir.as_deref(),
            Some(std::path::Path::new("/tmp/sim-state"))
        );
        assert_eq!(s.time_retry_ms, 1_000);
        assert!(s.fw_apply_mqtt_only);
        assert_eq!(s.probes, 8);
        assert!(!s.tcp_nodelay);
        assert_eq!(s.greenhouse, "gh-test");
        assert_eq!((s.zones, s.nodes), (2, 7));
        assert!(s.seed_db);
        assert_eq!(s.drop_responses, 0.25);
        assert_eq!(s.response_delay_ms, 100);
        assert_eq!(s.broker_url.as_deref(), Some("mqtt://127.0.0.1:1884"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("SIM_ZONES", "0"),
            ("SIM_NODES", "0"),
            ("SIM_TELEMETRY_INTERVAL_MS", "5"),
            ("SIM_HEARTBEAT_INTERVAL_MS", "1"),
            ("SIM_FALLBACK_AFTER_MS", "5"),
            ("SIM_DROP_RESPONSES", "1.5"),
            ("SIM_DUPLICATE_RESPONSES", "-0.1"),
            ("SIM_RESPONSE_DELAY_MS", "9999999"),
            ("SIM_BROKER_URL", "tcp://x:1"),
            ("SIM_BROKER_URLS", "mqtt://127.0.0.1:1883,tcp://x:1"),
            ("SIM_BROKER_URLS", " , "),
            ("SIM_GREENHOUSE", "gh/1"),
            ("SIM_PROBES", "17"),
            ("SIM_TCP_NODELAY", "maybe"),
            ("SIM_MODE", "legacy"),
            ("SIM_TIME_RETRY_MS", "5"),
            ("SIM_FW_APPLY_MQTT_ONLY", "perhaps"),
        ] {
            let err = SimSettings::from_vars(vars(&[(k, v)])).unwrap_err();
            let text = err.to_string().to_lowercase();
            assert!(text.contains(&k.to_lowercase()), "{k}={v}: {err}");
        }
    }
}
