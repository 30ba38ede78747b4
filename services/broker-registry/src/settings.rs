//! broker-registry's own settings, read from the environment next to the
//! shared [`common::settings::Settings`] and validated before anything starts.

use common::placement::balance::{Role, Strategy};
use common::settings::{FromEnv, SettingsError, de_from_str, require, within};
use secrecy::SecretString;
use serde::Deserialize;

use crate::registry::SeedBroker;

/// What the registry seeds and how the engine places nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RegistrySettings {
    /// `MQTT_BROKERS`: the brokers to register at first start, comma
    /// separated `id=url` or `id=url@role`, e.g.
    /// `mqtt1=mqtt://127.0.0.1:1883,mqtt2=mqtt://127.0.0.1:1884@standby`.
    /// Brokers already in the table are left as the API made them. Unset:
    /// the default broker (`MQTT_BROKER_ID` at `MQTT_HOST:MQTT_PORT`).
    pub mqtt_brokers: Option<String>,
    /// `ASSIGNMENT_STRATEGY`: `static`, `dynamic` or `priority` (default).
    #[serde(deserialize_with = "de_from_str")]
    pub assignment_strategy: Strategy,
    /// `HEALTH_INTERVAL_MS`: how often each broker is sampled; default 5000.
    pub health_interval_ms: u64,
    /// `ASSIGN_INTERVAL_MS`: how often new nodes are looked for; default 2000.
    pub assign_interval_ms: u64,
    /// `REBALANCE_INTERVAL_SEC`: how often the automatic rebalance runs; 0 =
    /// never; default 60.
    pub rebalance_interval_sec: u64,
    /// `REBALANCE_THRESHOLD`: load-index spread above which nodes move;
    /// default 0.15.
    pub rebalance_threshold: f64,
    /// `REBALANCE_MAX_MOVES`: the most nodes one rebalance round moves;
    /// default 20.
    pub rebalance_max_moves: usize,
    /// `MOVE_COOLDOWN_SEC`: a node moved this recently is not moved by a
    /// rebalance; default 600.
    pub move_cooldown_sec: u64,
    /// `MOVE_CONFIRM_TIMEOUT_SEC`: a NodeConfig move the node has not made
    /// (not observed on its new broker) after this long is taken back: its
    /// assignment returns to where the node is observed. Default 60.
    pub move_confirm_timeout_sec: u64,
    /// `REBALANCE_FILL_EMPTY`: whether a rebalance gives a usable general
    /// broker holding no node (a recovered one) nodes of the fullest one,
    /// whatever the load figures say. `false` leaves it empty until the load
    /// spread calls for it. Default `true`.
    pub rebalance_fill_empty: bool,
    /// `BROKER_REGISTRY_API_TOKEN`: the bearer token every write of the API
    /// (add or change a broker, rebalance) demands, and reads too when
    /// `HTTP_READS_REQUIRE_TOKEN` is true; unset = `BRIDGE_API_TOKEN`; both
    /// unset = no auth (warned; refused with `HYDRO_ENV=production`).
    pub broker_registry_api_token: Option<SecretString>,
    /// `ADVISOR_MODEL_URL`: the base URL of an OpenAI-compatible endpoint
    /// (`http://host:8000/v1`; `/chat/completions` is added) the advisor
    /// also asks. Unset (the default): no model.
    pub advisor_model_url: Option<String>,
    /// `ADVISOR_MODEL_NAME`: the model asked; default `gpt-4o-mini`.
    pub advisor_model_name: String,
    /// `ADVISOR_MODEL_API_KEY` (or `_FILE`): its bearer key, if it needs one.
    pub advisor_model_api_key: Option<SecretString>,
    /// `ADVISOR_MODEL_TIMEOUT_MS`: how long an answer may take; default 20000.
    pub advisor_model_timeout_ms: u64,
    /// `ADVISOR_MODEL_INTERVAL_SEC`: the model is asked at most this often
    /// (the dashboard polls the advisor); its last suggestions stay listed.
    /// Default 300.
    pub advisor_model_interval_sec: u64,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            mqtt_brokers: None,
            assignment_strategy: Strategy::Priority,
            health_interval_ms: 5_000,
            assign_interval_ms: 2_000,
            rebalance_interval_sec: 60,
            rebalance_threshold: 0.15,
            rebalance_max_moves: 20,
            move_cooldown_sec: 600,
            move_confirm_timeout_sec: 60,
            rebalance_fill_empty: true,
            broker_registry_api_token: None,
            advisor_model_url: None,
            advisor_model_name: "gpt-4o-mini".into(),
            advisor_model_api_key: None,
            advisor_model_timeout_ms: 20_000,
            advisor_model_interval_sec: 300,
        }
    }
}

impl FromEnv for RegistrySettings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.seed_brokers()?;
        within("HEALTH_INTERVAL_MS", self.health_interval_ms, 500, 600_000)?;
        within("ASSIGN_INTERVAL_MS", self.assign_interval_ms, 100, 600_000)?;
        require(
            self.rebalance_threshold.is_finite() && self.rebalance_threshold > 0.0,
            "REBALANCE_THRESHOLD must be a positive number",
        )?;
        require(
            self.rebalance_max_moves > 0,
            "REBALANCE_MAX_MOVES must be at least 1",
        )?;
        require(
            self.advisor_model_url
                .as_ref()
                .is_none_or(|url| url.starts_with("http://") || url.starts_with("https://")),
            "ADVISOR_MODEL_URL must be an http:// or https:// URL",
        )?;
        within(
            "ADVISOR_MODEL_TIMEOUT_MS",
            self.advisor_model_timeout_ms,
            100,
            600_000,
        )?;
        require(
            self.move_confirm_timeout_sec > 0,
            "MOVE_CONFIRM_TIMEOUT_SEC must be at least 1",
        )
    }
}

impl RegistrySettings {
    /// The brokers of `MQTT_BROKERS` (empty when unset).
    pub fn seed_brokers(&self) -> Result<Vec<SeedBroker>, SettingsError> {
        let Some(list) = &self.mqtt_brokers else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| parse_seed(entry).map_err(|e| SettingsError(format!("MQTT_BROKERS: {e}"))))
            .collect()
    }

    /// The advisor's model, when `ADVISOR_MODEL_URL` is set.
    pub fn advisor_model(&self) -> Option<crate::advisor::model::ModelConfig> {
        Some(crate::advisor::model::ModelConfig {
            url: self.advisor_model_url.clone()?,
            name: self.advisor_model_name.clone(),
            api_key: self.advisor_model_api_key.clone(),
            timeout: self.advisor_model_timeout(),
        })
    }

    /// The API token: `BROKER_REGISTRY_API_TOKEN`, else `BRIDGE_API_TOKEN`.
    pub fn api_token<'a>(&'a self, bridge: Option<&'a SecretString>) -> Option<&'a SecretString> {
        self.broker_registry_api_token.as_ref().or(bridge)
    }
}

common::durations!(RegistrySettings {
    health_interval: from_millis(health_interval_ms),
    assign_interval: from_millis(assign_interval_ms),
    move_cooldown: from_secs(move_cooldown_sec),
    move_confirm_timeout: from_secs(move_confirm_timeout_sec),
    rebalance_interval: from_secs(rebalance_interval_sec),
    advisor_model_interval: from_secs(advisor_model_interval_sec),
    advisor_model_timeout: from_millis(advisor_model_timeout_ms),
});

/// `id=url` or `id=url@role`.
pub fn parse_seed(entry: &str) -> Result<SeedBroker, String> {
    let (id, rest) = entry
        .split_once('=')
        .ok_or_else(|| format!("`{entry}` is not id=url or id=url@role"))?;
    let (url, role) = match rest.rsplit_once('@') {
        Some((url, role)) => (url, role.parse::<Role>()?),
        None => (rest, Role::Primary),
    };
    crate::registry::check_id(id)?;
    common::mqtt::parse_broker_url(url).map_err(|e| e.to_string())?;
    Ok(SeedBroker {
        id: id.trim().to_owned(),
        url: url.trim().to_owned(),
        role,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use testkit::env_vars as vars;

    #[test]
    fn defaults() {
        let s = RegistrySettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.assignment_strategy, Strategy::Priority);
        assert!(s.seed_brokers().unwrap().is_empty());
        assert_eq!(s.health_interval(), Duration::from_secs(5));
        assert_eq!(s.rebalance_max_moves, 20);
        assert!(s.advisor_model().is_none(), "the model is off by default");
    }

    #[test]
    fn token_falls_back_to_the_bridge_token() {
        use secrecy::ExposeSecret;
        let bridge = SecretString::from("bridge");
        let s = RegistrySettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert!(s.api_token(None).is_none());
        assert_eq!(
            s.api_token(Some(&bridge)).unwrap().expose_secret(),
            "bridge"
        );
        let s = RegistrySettings::from_vars(vars(&[("BROKER_REGISTRY_API_TOKEN", "own")])).unwrap();
        assert_eq!(s.api_token(Some(&bridge)).unwrap().expose_secret(), "own");
        let s = RegistrySettings::from_vars(vars(&[("BROKER_REGISTRY_API_TOKEN", " ")])).unwrap();
        assert!(s.api_token(None).is_none());
    }

    #[test]
    fn the_model_key_may_come_from_a_file() {
        use secrecy::ExposeSecret;
        let path = std::env::temp_dir().join(format!("model-key-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "sk-test\n").unwrap();
        let s = RegistrySettings::from_vars(vars(&[
            ("ADVISOR_MODEL_URL", "http://127.0.0.1:9/v1"),
            ("ADVISOR_MODEL_API_KEY_FILE", path.to_str().unwrap()),
        ]))
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        let model = s.advisor_model().expect("set");
        assert_eq!(model.url, "http://127.0.0.1:9/v1");
        assert_eq!(model.api_key.unwrap().expose_secret(), "sk-test");
        assert!(!format!("{s:?}").contains("sk-test"), "never printed");
    }

    #[test]
    fn brokers_with_roles() {
        let s = RegistrySettings::from_vars(vars(&[(
            "MQTT_BROKERS",
            "mqtt1=mqtt://127.0.0.1:1883, mqtt2=mqtt://127.0.0.1:1884@standby,mqtt3=mqtt://h:1885@dedicated",
        )]))
        .unwrap();
        let b = s.seed_brokers().unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].role, Role::Primary);
        assert_eq!(b[1].url, "mqtt://127.0.0.1:1884");
        assert_eq!(b[1].role, Role::Standby);
        assert_eq!(b[2].role, Role::Dedicated);
    }

    #[test]
    fn bad_values_name_the_variable() {
        testkit::assert_each_refused::<RegistrySettings>(&[
            ("MQTT_BROKERS", "mqtt1"),
            ("MQTT_BROKERS", "mqtt1=tcp://x:1"),
            ("MQTT_BROKERS", "mqtt1=mqtt://x:1@boss"),
            ("MQTT_BROKERS", "bad id=mqtt://x:1"),
            ("ASSIGNMENT_STRATEGY", "random"),
            ("HEALTH_INTERVAL_MS", "10"),
            ("REBALANCE_MAX_MOVES", "0"),
            ("ADVISOR_MODEL_URL", "ftp://model"),
            ("ADVISOR_MODEL_TIMEOUT_MS", "5"),
        ]);
    }
}
