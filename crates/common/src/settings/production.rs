//! What `HYDRO_ENV=production` refuses: empty secrets and development
//! defaults, named by their variables.

use secrecy::{ExposeSecret, SecretString};

use super::{Settings, SettingsError};

/// The development fallback for `NODE_DEFAULT_SECRET`. Services warn at start
/// when they run with it.
pub const DEV_NODE_SECRET: &str = "hydro-dev-node-secret";

/// Values that only ever serve development: the dev fallbacks of this
/// workspace and the tokens its scripts and tests use. `HYDRO_ENV=production`
/// refuses every secret that is one of them (compared case-insensitively),
/// or that starts with [`DEV_SECRET_PREFIX`].
pub const DEV_DEFAULT_SECRETS: &[&str] = &[
    DEV_NODE_SECRET,
    "hydro",
    "dev-token",
    "compat-token",
    "compat-secret",
    "changeme",
    "change-me",
    "secret",
    "password",
    "token",
];

/// How every development default of the compose files begins
/// (`hydro-dev-mqtt-pass-…`); `HYDRO_ENV=production` refuses them all.
pub const DEV_SECRET_PREFIX: &str = "hydro-dev-";

/// A secret a service uses, for [`Settings::refuse_dev_defaults`].
#[derive(Debug, Clone, Copy)]
pub enum Uses<'a> {
    /// The broker login: `MQTT_USER` and `MQTT_PASS`.
    Mqtt,
    /// PostgreSQL: the password of `DATABASE_URL`, else `PG_PASS`.
    Database,
    /// `NODE_DEFAULT_SECRET`, the HMAC key of nodes without their own.
    NodeSecret,
    /// A service's own secret, by its variable name.
    Secret {
        name: &'static str,
        value: Option<&'a SecretString>,
    },
    /// The bearer token of the service's API, by its variable name: like a
    /// [`Uses::Secret`] in production; elsewhere, unset, it is warned about
    /// (the API then accepts requests without a token).
    ApiToken {
        name: &'static str,
        value: Option<&'a SecretString>,
    },
}

impl<'a> Uses<'a> {
    /// What every backend service uses (the broker login, PostgreSQL and the
    /// node secret), then `more`.
    pub fn backend(more: impl IntoIterator<Item = Uses<'a>>) -> Vec<Uses<'a>> {
        [Uses::Mqtt, Uses::Database, Uses::NodeSecret]
            .into_iter()
            .chain(more)
            .collect()
    }
}

/// What is wrong with a secret in production: empty, or a dev default.
fn dev_secret_problem(name: &str, value: Option<&str>) -> Option<String> {
    match value.map(str::trim) {
        None | Some("") => Some(format!("{name} is not set")),
        Some(v)
            if DEV_DEFAULT_SECRETS
                .iter()
                .any(|d| d.eq_ignore_ascii_case(v))
                || v.to_ascii_lowercase().starts_with(DEV_SECRET_PREFIX) =>
        {
            Some(format!("{name} is a development default"))
        }
        Some(_) => None,
    }
}

/// The password part of a `postgres://user:password@host/db` URL, as written.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

impl Settings {
    /// Whether `HYDRO_ENV` is `production` (or `prod`).
    pub fn is_production(&self) -> bool {
        self.hydro_env
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("production") || e.eq_ignore_ascii_case("prod"))
    }

    /// With `HYDRO_ENV=production`, an error naming every variable among the
    /// secrets the service `uses` that is empty or a development default
    /// ([`DEV_DEFAULT_SECRETS`]); elsewhere, `Ok`, with a warning for each
    /// unset [`Uses::ApiToken`]. Services call it first thing at start, so a
    /// production deployment never runs on dev secrets.
    pub fn refuse_dev_defaults(&self, uses: &[Uses<'_>]) -> Result<(), SettingsError> {
        if !self.is_production() {
            for used in uses {
                if let Uses::ApiToken { name, value: None } = used {
                    tracing::warn!("{name} is not set: the API accepts requests without a token.");
                }
            }
            return Ok(());
        }
        let mut problems = Vec::new();
        for used in uses {
            match used {
                Uses::Mqtt => {
                    if self
                        .mqtt
                        .user
                        .as_deref()
                        .is_none_or(|u| u.trim().is_empty())
                    {
                        problems.push("MQTT_USER is not set".to_owned());
                    }
                    problems.extend(dev_secret_problem(
                        "MQTT_PASS",
                        self.mqtt.pass.as_ref().map(|p| p.expose_secret()),
                    ));
                }
                Uses::Database => match &self.pg.database_url {
                    Some(url) => problems.extend(dev_secret_problem(
                        "the password of DATABASE_URL",
                        url_password(url.expose_secret()),
                    )),
                    None => problems.extend(dev_secret_problem(
                        "PG_PASS",
                        Some(self.pg.pass.expose_secret()),
                    )),
                },
                Uses::NodeSecret => problems.extend(dev_secret_problem(
                    "NODE_DEFAULT_SECRET",
                    Some(self.node_default_secret.expose_secret()),
                )),
                Uses::Secret { name, value } | Uses::ApiToken { name, value } => {
                    problems.extend(dev_secret_problem(name, value.map(|v| v.expose_secret())))
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError(format!(
                "HYDRO_ENV=production refuses to start on development defaults: {}",
                problems.join("; ")
            )))
        }
    }

    /// Whether the node secret is the development fallback.
    pub fn uses_dev_node_secret(&self) -> bool {
        self.node_default_secret.expose_secret() == DEV_NODE_SECRET
    }

    /// Warns (once per call, at start) when commands would be signed with
    /// the development secret.
    pub fn warn_if_dev_node_secret(&self) {
        if self.uses_dev_node_secret() {
            tracing::warn!(
                "NODE_DEFAULT_SECRET is the development default; set a real secret in production."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::env_vars as vars;

    fn production(extra: &[(&str, &str)]) -> Settings {
        let mut pairs = vec![
            ("HYDRO_ENV", "production"),
            ("MQTT_USER", "hydro-history-logger"),
            ("MQTT_PASS", "a7Kq0-long-broker-password"),
            ("PG_PASS", "pg-real-password"),
            ("NODE_DEFAULT_SECRET", "a-real-node-secret-9f8e7d"),
        ];
        pairs.extend_from_slice(extra);
        Settings::from_vars(vars(&pairs)).unwrap()
    }

    fn refusal(s: &Settings, uses: &[Uses<'_>]) -> String {
        s.refuse_dev_defaults(uses).unwrap_err().to_string()
    }

    #[test]
    fn development_accepts_dev_defaults() {
        let s = Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
        assert!(!s.is_production());
        let all = [
            Uses::Mqtt,
            Uses::Database,
            Uses::NodeSecret,
            Uses::Secret {
                name: "SIM_API_TOKEN",
                value: None,
            },
        ];
        s.refuse_dev_defaults(&all).unwrap();
        let s = Settings::from_vars(vars(&[("HYDRO_ENV", "development")])).unwrap();
        s.refuse_dev_defaults(&all).unwrap();
    }

    #[test]
    fn production_accepts_real_secrets() {
        let token = SecretString::from("9c1f7e0b4d2a6c8e");
        let s = production(&[]);
        assert!(s.is_production());
        s.refuse_dev_defaults(&[
            Uses::Mqtt,
            Uses::Database,
            Uses::NodeSecret,
            Uses::Secret {
                name: "BRIDGE_API_TOKEN",
                value: Some(&token),
            },
        ])
        .unwrap();
        let s = production(&[("DATABASE_URL", "postgres://hydro:s3cr3t-pw@db:5432/hydro")]);
        s.refuse_dev_defaults(&[Uses::Database]).unwrap();
    }

    #[test]
    fn production_refuses_each_dev_default_by_name() {
        let dev_token = SecretString::from("dev-token");
        let cases: Vec<(Settings, Uses<'_>, &str)> = vec![
            (
                production(&[("NODE_DEFAULT_SECRET", DEV_NODE_SECRET)]),
                Uses::NodeSecret,
                "NODE_DEFAULT_SECRET is a development default",
            ),
            (
                Settings::from_vars(vars(&[("HYDRO_ENV", "production")])).unwrap(),
                Uses::NodeSecret,
                "NODE_DEFAULT_SECRET is a development default",
            ),
            (
                production(&[("PG_PASS", "hydro")]),
                Uses::Database,
                "PG_PASS is a development default",
            ),
            (
                production(&[("MQTT_PASS", "hydro-dev-mqtt-pass-scheduler")]),
                Uses::Mqtt,
                "MQTT_PASS is a development default",
            ),
            (
                production(&[("DATABASE_URL", "postgres://hydro:hydro@db:5432/hydro")]),
                Uses::Database,
                "DATABASE_URL is a development default",
            ),
            (
                production(&[("DATABASE_URL", "postgres://hydro@db:5432/hydro")]),
                Uses::Database,
                "DATABASE_URL is not set",
            ),
            (
                Settings::from_vars(vars(&[("HYDRO_ENV", "production")])).unwrap(),
                Uses::Mqtt,
                "MQTT_USER is not set",
            ),
            (
                production(&[("MQTT_PASS", "")]),
                Uses::Mqtt,
                "MQTT_PASS is not set",
            ),
            (
                production(&[]),
                Uses::Secret {
                    name: "SIM_API_TOKEN",
                    value: None,
                },
                "SIM_API_TOKEN is not set",
            ),
            (
                production(&[]),
                Uses::Secret {
                    name: "BRIDGE_API_TOKEN",
                    value: Some(&dev_token),
                },
                "BRIDGE_API_TOKEN is a development default",
            ),
        ];
        for (s, uses, needle) in cases {
            let err = refusal(&s, &[uses]);
            assert!(err.contains(needle), "{uses:?}: {err}");
            assert!(err.contains("HYDRO_ENV=production"), "{err}");
            assert!(
                !err.contains("hydro-dev-node-secret"),
                "a secret leaked: {err}"
            );
        }
        // Every problem at once, so one restart fixes them all.
        let s = Settings::from_vars(vars(&[("HYDRO_ENV", "PRODUCTION")])).unwrap();
        let err = refusal(&s, &[Uses::Mqtt, Uses::Database, Uses::NodeSecret]);
        for name in ["MQTT_USER", "MQTT_PASS", "PG_PASS", "NODE_DEFAULT_SECRET"] {
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url_password("postgres://u:p@h:1/d"), Some("p"));
        assert_eq!(url_password("postgres://u:p:q@h/d?x=@"), Some("p:q"));
        assert_eq!(url_password("postgres://u@h/d"), None);
        assert_eq!(url_password("postgres://h/d"), None);
    }
}
