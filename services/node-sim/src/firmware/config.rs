//! A firmware node's identity and its NodeConfig: where it lives (the temp
//! namespace until it is bound), the checks and decisions of
//! node_config_handler.c on a pushed config, and the copy it keeps
//! (NVS on real hardware; a file under `SIM_STATE_DIR` here).

use std::path::{Path, PathBuf};

use proto::payloads::NodeConfig;
use proto::topics::{TEMP_GREENHOUSE, TEMP_ZONE};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::warn;

/// The node's hardware id: `esp32-` and 12 lowercase hex digits (its MAC on
/// real hardware), derived from `seed` and the node's index so that a
/// restarted simulator keeps its nodes' ids.
pub fn hardware_id(seed: &str, index: usize) -> String {
    let digest = Sha256::digest(format!("{seed}:{index}").as_bytes());
    format!("esp32-{}", &hex::encode(digest)[..12])
}

/// The three topic levels a node publishes under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub gh: String,
    pub zone: String,
    pub node: String,
}

impl Namespace {
    /// `hydro/gh-temp/zn-temp/{hardware_id}`: an unbound node's.
    pub fn temp(hardware_id: &str) -> Namespace {
        Namespace {
            gh: TEMP_GREENHOUSE.into(),
            zone: TEMP_ZONE.into(),
            node: hardware_id.into(),
        }
    }

    pub fn is_temp(&self) -> bool {
        self.gh == TEMP_GREENHOUSE || self.zone == TEMP_ZONE
    }
}

/// Whether a config puts the node in the temp namespace (either level temp,
/// as the firmware checks).
pub fn is_temp(config: &NodeConfig) -> bool {
    config.gh_uid == TEMP_GREENHOUSE || config.zone_uid == TEMP_ZONE
}

/// Where a config puts the node: its own namespace when bound, the temp one
/// (by hardware id) otherwise.
pub fn namespace_of(config: Option<&NodeConfig>, hardware_id: &str) -> Namespace {
    match config {
        Some(c) if !is_temp(c) => Namespace {
            gh: c.gh_uid.clone(),
            zone: c.zone_uid.clone(),
            node: c.node_id.clone(),
        },
        _ => Namespace::temp(hardware_id),
    }
}

/// What the node does with a pushed config.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Refused; the firmware logs it and sends nothing.
    Invalid(String),
    /// Acknowledged with a `config_report` of what it runs, not applied: a
    /// temp config while unbound, or one equal to the stored config apart
    /// from `wifi` and `mqtt`.
    Keep(&'static str),
    /// Save it and run it (a bind, a rebind, an unbind, a new secret...).
    Apply(Box<NodeConfig>),
}

/// The firmware's decision on `payload`, given the config it runs (`None`
/// before any). `apply_connectivity_only` applies a config that differs
/// only in `wifi`/`mqtt` where the firmware keeps its current one.
pub fn decide(
    payload: &[u8],
    current: Option<&NodeConfig>,
    apply_connectivity_only: bool,
) -> Decision {
    let raw: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(_) => return Decision::Invalid("Invalid JSON".into()),
    };
    if let Err(problem) = validate(&raw) {
        return Decision::Invalid(problem.into());
    }
    let config = match NodeConfig::decode(payload) {
        Ok(c) => c,
        Err(e) => return Decision::Invalid(e.to_string()),
    };
    let bound = current.is_some_and(|c| !is_temp(c));
    if !bound && is_temp(&config) {
        return Decision::Keep("temporary mode: waiting for a binding");
    }
    if let Some(current) = current
        && !apply_connectivity_only
        && equal_ignoring_connectivity(&config, current)
    {
        return Decision::Keep("config unchanged");
    }
    Decision::Apply(Box::new(config))
}

/// node_config_handler_validate: the fields a config must have.
fn validate(raw: &Value) -> Result<(), &'static str> {
    let field = |name: &str| raw.get(name);
    if !field("node_id").is_some_and(Value::is_string) {
        return Err("Missing or invalid node_id");
    }
    if !field("version").is_some_and(Value::is_number) {
        return Err("Missing or invalid version");
    }
    if !field("type").is_some_and(Value::is_string) {
        return Err("Missing or invalid type");
    }
    if !field("channels").is_some_and(Value::is_array) {
        return Err("Missing or invalid channels");
    }
    let Some(mqtt) = field("mqtt").and_then(Value::as_object) else {
        return Err("Missing or invalid mqtt");
    };
    if mqtt.get("configured") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if mqtt
        .get("host")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("Missing or invalid mqtt.host");
    }
    let in_u16 = |v: &Value| v.as_f64().is_some_and(|n| n > 0.0 && n <= 65535.0);
    if !mqtt.get("port").is_some_and(in_u16) {
        return Err("Missing or invalid mqtt.port (must be 1-65535)");
    }
    if mqtt.get("keepalive").is_some_and(|k| !in_u16(k)) {
        return Err("Invalid mqtt.keepalive (must be 1-65535)");
    }
    Ok(())
}

fn equal_ignoring_connectivity(a: &NodeConfig, b: &NodeConfig) -> bool {
    let strip = |c: &NodeConfig| {
        let mut v = serde_json::to_value(c).expect("a NodeConfig serialises");
        if let Some(o) = v.as_object_mut() {
            o.remove("wifi");
            o.remove("mqtt");
        }
        v
    };
    strip(a) == strip(b)
}

/// The broker a config names, as `mqtt://host:port` (`None` for
/// `{"configured": true}`: keep the current one).
pub fn broker_url(config: &NodeConfig) -> Option<String> {
    let m = config.mqtt_target()?;
    let scheme = if m.tls == Some(true) { "mqtts" } else { "mqtt" };
    Some(format!("{scheme}://{}:{}", m.host, m.port))
}

/// The config as reported upward: without `node_secret` or the broker
/// password, with the firmware's version.
pub fn report(config: &NodeConfig, fw_version: &str) -> NodeConfig {
    let mut report = config.clone();
    report.node_secret = None;
    if let Some(mqtt) = report.mqtt.as_object_mut() {
        mqtt.remove("password");
        mqtt.remove("pass");
    }
    report.fw_version = Some(fw_version.to_owned());
    report
}

/// Where a node keeps its config between runs (like NVS).
#[derive(Debug, Clone)]
pub struct ConfigStore {
    path: Option<PathBuf>,
}

impl ConfigStore {
    /// `{dir}/{hardware_id}.json`; with no `dir`, nothing is kept.
    pub fn new(dir: Option<&Path>, hardware_id: &str) -> ConfigStore {
        ConfigStore {
            path: dir.map(|d| d.join(format!("{hardware_id}.json"))),
        }
    }

    /// The saved config, if any and readable.
    pub fn load(&self) -> Option<NodeConfig> {
        let path = self.path.as_ref()?;
        let bytes = std::fs::read(path).ok()?;
        match NodeConfig::decode(&bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "Saved node config unreadable; starting unbound.");
                None
            }
        }
    }

    /// Saves `config` (secret included, as NVS holds it).
    pub fn save(&self, config: &NodeConfig) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(config).expect("a NodeConfig serialises"),
        )?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pushed(gh: &str, zone: &str, port: u16) -> Value {
        json!({
            "node_id": "nd-x", "version": 3, "type": "ph", "gh_uid": gh, "zone_uid": zone,
            "channels": [{"name": "ph_sensor", "type": "SENSOR", "metric": "PH"}],
            "wifi": {"configured": true},
            "mqtt": {"host": "127.0.0.1", "port": port, "keepalive": 30},
            "node_secret": "a-node-secret-of-at-least-32-characters"
        })
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn applied(d: Decision) -> NodeConfig {
        match d {
            Decision::Apply(c) => *c,
            other => panic!("expected Apply, got {other:?}"),
        }
    }

    #[test]
    fn hardware_ids_are_stable_and_distinct() {
        let a = hardware_id("seed", 0);
        assert_eq!(a, hardware_id("seed", 0));
        assert_ne!(a, hardware_id("seed", 1));
        assert_ne!(a, hardware_id("other", 0));
        assert_eq!(a.len(), "esp32-".len() + 12);
        assert!(a.starts_with("esp32-"));
        assert!(
            a[6..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }

    #[test]
    fn a_bind_is_applied_and_names_its_namespace_and_broker() {
        let c = applied(decide(&bytes(&pushed("gh-1", "zn-1", 1884)), None, false));
        assert_eq!(
            namespace_of(Some(&c), "esp32-aa"),
            Namespace {
                gh: "gh-1".into(),
                zone: "zn-1".into(),
                node: "nd-x".into()
            }
        );
        assert_eq!(broker_url(&c).as_deref(), Some("mqtt://127.0.0.1:1884"));
        let r = report(&c, "fw-1");
        assert!(r.node_secret.is_none());
        assert_eq!(r.fw_version.as_deref(), Some("fw-1"));
        assert!(!serde_json::to_string(&r).unwrap().contains("node_secret"));
    }

    #[test]
    fn temp_while_unbound_is_kept_and_temp_while_bound_unbinds() {
        let temp = bytes(&pushed("gh-temp", "zn-temp", 1883));
        assert!(matches!(decide(&temp, None, false), Decision::Keep(_)));
        let bound = applied(decide(&bytes(&pushed("gh-1", "zn-1", 1883)), None, false));
        let unbound = applied(decide(&temp, Some(&bound), false));
        assert_eq!(
            namespace_of(Some(&unbound), "esp32-aa"),
            Namespace::temp("esp32-aa")
        );
        assert!(namespace_of(Some(&unbound), "esp32-aa").is_temp());
    }

    #[test]
    fn a_config_differing_only_in_mqtt_is_kept_unless_asked() {
        let first = applied(decide(&bytes(&pushed("gh-1", "zn-1", 1883)), None, false));
        let moved = bytes(&pushed("gh-1", "zn-1", 1884));
        assert_eq!(
            decide(&moved, Some(&first), false),
            Decision::Keep("config unchanged")
        );
        let c = applied(decide(&moved, Some(&first), true));
        assert_eq!(broker_url(&c).as_deref(), Some("mqtt://127.0.0.1:1884"));
        // Another zone is a change.
        applied(decide(
            &bytes(&pushed("gh-1", "zn-2", 1884)),
            Some(&first),
            false,
        ));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            ("node_id", json!(null)),
            ("version", json!("3")),
            ("type", json!(null)),
            ("channels", json!({})),
            ("mqtt", json!(null)),
        ];
        for (field, value) in cases {
            let mut v = pushed("gh-1", "zn-1", 1883);
            if value.is_null() {
                v.as_object_mut().unwrap().remove(field);
            } else {
                v[field] = value;
            }
            match decide(&bytes(&v), None, false) {
                Decision::Invalid(m) => assert!(m.contains(field), "{field}: {m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        for (mqtt, field) in [
            (json!({"port": 1883}), "mqtt.host"),
            (json!({"host": "h", "port": 0}), "mqtt.port"),
            (json!({"host": "h", "port": 70000}), "mqtt.port"),
            (
                json!({"host": "h", "port": 1883, "keepalive": 0}),
                "mqtt.keepalive",
            ),
        ] {
            let mut v = pushed("gh-1", "zn-1", 1883);
            v["mqtt"] = mqtt;
            match decide(&bytes(&v), None, false) {
                Decision::Invalid(m) => assert!(m.contains(field), "{field}: {m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(
            decide(b"nope", None, false),
            Decision::Invalid("Invalid JSON".into())
        );
        // `{"configured": true}` keeps the broker.
        let mut v = pushed("gh-1", "zn-1", 1883);
        v["mqtt"] = json!({"configured": true});
        assert_eq!(broker_url(&applied(decide(&bytes(&v), None, false))), None);
    }

    #[test]
    fn the_store_keeps_the_config_between_runs() {
        let dir = std::env::temp_dir().join(format!("node-sim-store-{}", std::process::id()));
        let store = ConfigStore::new(Some(&dir), "esp32-aa");
        assert!(store.load().is_none());
        let c = applied(decide(&bytes(&pushed("gh-1", "zn-1", 1883)), None, false));
        store.save(&c).unwrap();
        assert_eq!(
            ConfigStore::new(Some(&dir), "esp32-aa").load(),
            Some(c.clone())
        );
        assert!(ConfigStore::new(Some(&dir), "esp32-bb").load().is_none());
        assert!(ConfigStore::new(None, "esp32-aa").load().is_none());
        ConfigStore::new(None, "esp32-aa").save(&c).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
