//! Firmware mode (`SIM_MODE=firmware`): nodes that behave as the hydro2.0
//! ESP32 firmware does, from an unbound first boot to signed commands (see
//! [`node`]). Classic mode ([`crate::node`]) stays the default.
//!
//! # Running firmware nodes for another service's test
//!
//! As a library (node-sim as a dev-dependency):
//!
//! ```ignore
//! let sim = SimSettings {
//!     mode: SimMode::Firmware,
//!     nodes: 1,
//!     zones: 1,
//!     broker_url: Some(broker.url()),
//!     hardware_seed: "my-test".into(),
//!     ..SimSettings::default()
//! };
//! let app = node_sim::App::build(sim, settings).await?; // settings: HTTP_PORT=0, NODE_DEFAULT_SECRET
//! let node = app.firmware_nodes()[0].clone();         // node.hardware_id(), namespace(), broker_url()
//! tokio::spawn(app.run_until_stopped(shutdown));
//! ```
//!
//! As a process: `SIM_MODE=firmware SIM_NODES=1 SIM_BROKER_URL=mqtt://127.0.0.1:1883
//! SIM_HARDWARE_SEED=my-test node-sim`; the hardware ids are
//! [`hardware_id`]`(seed, index)` and `GET /sim/firmware-nodes` lists each
//! node's hardware id, namespace, broker and whether it is bound and synced.
//!
//! Either way the nodes wait for a `hydro/time/response` before they say
//! anything with a `ts`: the backend under test must answer time requests.

pub mod canonical;
pub mod clock;
mod commands;
pub mod config;
pub mod node;
pub mod signature;
mod uplink;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::settings::Settings;

use crate::faults::Faults;

pub use config::hardware_id;
pub use node::{FW_VERSION, FirmwareNode};
pub use uplink::node_type;

/// What every firmware-mode node shares.
#[derive(Debug)]
pub struct FirmwareContext {
    /// Where an unbound node connects: node `i` takes entry `i % n`. Never empty.
    pub broker_urls: Vec<String>,
    /// Credentials, publish timeout and the default node secret (the key
    /// before a NodeConfig gives the node its own).
    pub settings: Settings,
    pub faults: Arc<Faults>,
    pub telemetry_interval: Duration,
    pub heartbeat_interval: Duration,
    /// How often an unanswered time request is repeated.
    pub time_retry: Duration,
    /// `SIM_HARDWARE_SEED`: hardware ids derive from it and the node index.
    pub hardware_seed: String,
    /// `SIM_STATE_DIR`: where configs are saved between runs (none: not saved).
    pub state_dir: Option<PathBuf>,
    /// `SIM_FW_APPLY_MQTT_ONLY`.
    pub apply_connectivity_only: bool,
    pub tcp_nodelay: bool,
    /// `MQTT_PROVISION_USER` / `MQTT_PROVISION_PASS`: the login of an
    /// unbound node (one whose saved config carries no login of its own).
    /// `None`: `MQTT_USER` / `MQTT_PASS` as for everything else.
    pub provision_login: Option<(String, secrecy::SecretString)>,
}
