//! node-sim: simulated ESP32 greenhouse nodes speaking the hydro wire
//! contract over MQTT, for tests, demos and benchmarks.

pub mod api;
pub mod command;
pub mod demo_recipe;
pub mod faults;
pub mod firmware;
pub mod layout;
pub mod link;
pub mod metrics;
pub mod node;
pub mod physics;
pub mod recent;
pub mod seed;
pub mod settings;
pub mod startup;

pub use firmware::FirmwareNode;
pub use node::SimNode;
pub use settings::SimSettings;
pub use startup::App;

/// The service's name in logs, metrics and health.
pub const SERVICE: &str = "node-sim";
