//! mqtt-bridge: the REST API that turns requests into signed MQTT commands,
//! and the owner of every command's lifecycle (responses and timeouts),
//! whoever sent it.

pub mod auth;
pub mod error;
pub mod input;
pub mod redelivery;
pub mod responses;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod sweeper;
pub mod target_cache;

pub use settings::BridgeSettings;
pub use startup::App;

/// The service name: metrics label, health report, lease holder prefix and
/// default shared-subscription group.
pub const SERVICE: &str = "mqtt-bridge";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9000;
