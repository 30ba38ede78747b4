//! device-registry's own settings, read from the environment next to the
//! shared [`common::settings::Settings`] and validated before anything starts.

use std::time::Duration;

use common::settings::{FromEnv, SettingsError, require, within};
use secrecy::SecretString;
use serde::Deserialize;

/// How binds expire and how often unbound nodes are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeviceSettings {
    /// `DEVICE_REGISTRY_API_TOKEN`: bearer token every route of the API
    /// demands; unset = `BRIDGE_API_TOKEN`; both unset = no auth (warned).
    pub device_registry_api_token: Option<SecretString>,
    /// `DEVICE_BIND_TTL_SEC`: a bind with no confirming `config_report` after
    /// this long is EXPIRED (the node stays unbound); default 1800.
    pub device_bind_ttl_sec: u64,
    /// `DEVICE_UNBOUND_WRITE_MS`: the shortest interval between two database
    /// writes for one unbound node and channel; a chatty node's readings in
    /// between are counted, not written. Default 1000.
    pub device_unbound_write_ms: u64,
    /// `MQTT_ADMIN_USER`: the dynamic-security admin account the registry
    /// manages node accounts with, on every broker. Unset: node accounts are
    /// not managed (warned; brokers without authentication only).
    pub mqtt_admin_user: Option<String>,
    /// `MQTT_ADMIN_PASS`: its password.
    pub mqtt_admin_pass: Option<SecretString>,
    /// `MQTT_PROVISION_USER`: the login of unbound nodes, put in the
    /// temp-namespace NodeConfig of an unbind; default `hydro-provision`.
    pub mqtt_provision_user: String,
    /// `MQTT_PROVISION_PASS`: its password. Unset: an unbind's NodeConfig
    /// carries no login (warned).
    pub mqtt_provision_pass: Option<SecretString>,
    /// `DEVICE_ACCOUNT_SYNC_SEC`: how often every broker's node accounts are
    /// brought in line with the database (also on every (re)connect);
    /// default 30.
    pub device_account_sync_sec: u64,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            device_registry_api_token: None,
            device_bind_ttl_sec: 1800,
            device_unbound_write_ms: 1000,
            mqtt_admin_user: None,
            mqtt_admin_pass: None,
            mqtt_provision_user: "hydro-provision".into(),
            mqtt_provision_pass: None,
            device_account_sync_sec: 30,
        }
    }
}

impl FromEnv for DeviceSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        within(
            "DEVICE_BIND_TTL_SEC",
            self.device_bind_ttl_sec,
            1,
            7 * 86_400,
        )?;
        within(
            "DEVICE_UNBOUND_WRITE_MS",
            self.device_unbound_write_ms,
            0,
            600_000,
        )?;
        within(
            "DEVICE_ACCOUNT_SYNC_SEC",
            self.device_account_sync_sec,
            1,
            3600,
        )?;
        require(
            self.mqtt_admin_user.is_some() == self.mqtt_admin_pass.is_some(),
            "MQTT_ADMIN_USER and MQTT_ADMIN_PASS go together: set both or neither",
        )
    }
}

impl DeviceSettings {
    /// The dynsec admin login, when node accounts are managed.
    pub fn admin_login(&self) -> Option<(&str, &SecretString)> {
        Some((
            self.mqtt_admin_user.as_deref()?,
            self.mqtt_admin_pass.as_ref()?,
        ))
    }

    /// How often expired binds are looked for: half the TTL, 0.2 to 5 s.
    pub fn expiry_interval(&self) -> Duration {
        Duration::from_millis((self.device_bind_ttl_sec * 500).clamp(200, 5_000))
    }

    /// The API token: `DEVICE_REGISTRY_API_TOKEN`, else `BRIDGE_API_TOKEN`.
    pub fn api_token<'a>(&'a self, bridge: Option<&'a SecretString>) -> Option<&'a SecretString> {
        self.device_registry_api_token.as_ref().or(bridge)
    }
}

common::durations!(DeviceSettings {
    account_sync_interval: from_secs(device_account_sync_sec),
    bind_ttl: from_secs(device_bind_ttl_sec),
    unbound_write_interval: from_millis(device_unbound_write_ms),
});

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use testkit::env_vars as vars;

    #[test]
    fn defaults() {
        let s = DeviceSettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.bind_ttl(), Duration::from_secs(1800));
        assert_eq!(s.unbound_write_interval(), Duration::from_secs(1));
        assert_eq!(s.expiry_interval(), Duration::from_secs(5));
        assert!(s.api_token(None).is_none());
        assert!(s.admin_login().is_none());
        assert_eq!(s.mqtt_provision_user, "hydro-provision");
        assert_eq!(s.account_sync_interval(), Duration::from_secs(30));
    }

    #[test]
    fn the_admin_login_needs_both_halves() {
        let s = DeviceSettings::from_vars(vars(&[
            ("MQTT_ADMIN_USER", "hydro-admin"),
            ("MQTT_ADMIN_PASS", "x"),
        ]))
        .unwrap();
        assert_eq!(s.admin_login().unwrap().0, "hydro-admin");
        let err = DeviceSettings::from_vars(vars(&[("MQTT_ADMIN_USER", "hydro-admin")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MQTT_ADMIN_PASS"), "{err}");
        // Blank halves are unset (compose passes empty values): no login.
        let s =
            DeviceSettings::from_vars(vars(&[("MQTT_ADMIN_USER", " "), ("MQTT_ADMIN_PASS", "")]))
                .unwrap();
        assert!(s.admin_login().is_none());
    }

    #[test]
    fn token_falls_back_to_the_bridge_token() {
        let bridge = SecretString::from("bridge");
        let s = DeviceSettings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert_eq!(
            s.api_token(Some(&bridge)).unwrap().expose_secret(),
            "bridge"
        );
        let s = DeviceSettings::from_vars(vars(&[("DEVICE_REGISTRY_API_TOKEN", "own")])).unwrap();
        assert_eq!(s.api_token(Some(&bridge)).unwrap().expose_secret(), "own");
    }

    #[test]
    fn bad_values_name_the_variable() {
        testkit::assert_each_refused::<DeviceSettings>(&[
            ("DEVICE_BIND_TTL_SEC", "0"),
            ("DEVICE_BIND_TTL_SEC", "x"),
            ("DEVICE_UNBOUND_WRITE_MS", "9999999"),
            ("DEVICE_ACCOUNT_SYNC_SEC", "0"),
        ]);
    }
}
