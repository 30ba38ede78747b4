//! broker-registry: the broker list (seeded from `MQTT_BROKERS`, changed
//! through the API), the health monitor (probes, `$SYS` figures, load index,
//! status), the node assignment engine (new nodes, rebalancing) and the
//! load-balancing dashboard with its JSON API.

pub mod advisor;
pub mod audit;
pub mod engine;
pub mod error;
pub mod health;
pub mod load_index;
pub mod registry;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod strategy;
pub mod sys_stats;

pub use settings::RegistrySettings;
pub use startup::App;

/// The service name: metrics label, health report, lease holder prefix and
/// default shared-subscription group.
pub const SERVICE: &str = "broker-registry";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9403;
