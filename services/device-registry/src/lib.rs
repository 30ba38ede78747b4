//! device-registry: a node's life. It registers nodes from their hello and
//! from their uplink in the temp namespace (`hydro/gh-temp/zn-temp/{hw}/…`),
//! keeps what unbound nodes report, binds a node to a zone by pushing it a
//! NodeConfig with a fresh secret (pending until the node's `config_report`
//! from the target namespace confirms it, or until the bind expires), stores
//! every `config_report` (config, channels, observed broker, move
//! confirmation), and unbinds and decommissions nodes on request.

pub mod accounts;
pub mod binds;
pub mod channels;
pub mod error;
pub mod lifecycle;
pub mod pushes;
pub mod registration;
pub mod reports;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod throttle;
pub mod uplink;

pub use settings::DeviceSettings;
pub use startup::App;

/// The service name: metrics label, health report and default
/// shared-subscription group.
pub const SERVICE: &str = "device-registry";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9406;
