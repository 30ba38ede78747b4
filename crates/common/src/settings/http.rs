//! The HTTP concern of the shared settings: where a service listens
//! (`HTTP_HOST`, `HTTP_PORT`) and who may use its API (`BRIDGE_API_TOKEN`,
//! `HTTP_READS_REQUIRE_TOKEN`).

use secrecy::SecretString;
use serde::Deserialize;

use super::{SettingsError, require};

/// The service's HTTP server and its API's access.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// `HTTP_PORT`: the service's port; each service has its own default.
    #[serde(rename = "http_port")]
    pub port: Option<u16>,
    /// `HTTP_HOST`: the address the HTTP server listens on; `0.0.0.0` (every
    /// interface) by default, `127.0.0.1` keeps it to the machine.
    #[serde(rename = "http_host")]
    pub host: String,
    /// `HTTP_READS_REQUIRE_TOKEN`: whether reads (GET, HEAD) of the API need
    /// the bearer token too. Writes always do. Unset: the service's default
    /// (guarded on mqtt-bridge and device-registry, open elsewhere).
    /// `/health` and `/metrics` stay open for probes either way.
    #[serde(rename = "http_reads_require_token")]
    pub reads_require_token: Option<bool>,
    /// `BRIDGE_API_TOKEN`: bearer token the REST API demands (a service's own
    /// token variable wins where it has one); unset = no auth.
    #[serde(rename = "bridge_api_token")]
    pub api_token: Option<SecretString>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            port: None,
            host: "0.0.0.0".into(),
            reads_require_token: None,
            api_token: None,
        }
    }
}

impl HttpSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        require(
            !self.host.trim().is_empty(),
            "HTTP_HOST must not be empty (0.0.0.0 listens on every interface)",
        )
    }

    /// The HTTP port: `HTTP_PORT` if set, else the service's default.
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    /// The address to bind: `HTTP_HOST` and `HTTP_PORT` (else `default_port`).
    pub fn addr(&self, default_port: u16) -> (String, u16) {
        (self.host.trim().to_owned(), self.port_or(default_port))
    }

    /// Whether API reads need the token: `HTTP_READS_REQUIRE_TOKEN`, else
    /// the service's `default`.
    pub fn reads_require_token_or(&self, default: bool) -> bool {
        self.reads_require_token.unwrap_or(default)
    }
}
