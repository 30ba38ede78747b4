//! automation-engine: keeps each zone's pH and EC at its recipe phase's
//! targets. Every cycle it reads a [`snapshot`] of the zones with an active
//! recipe, advances their [`phase`]s, and for each quantity the
//! [`controller`] decides — within the zone's [`limits`] — to dose or not;
//! doses go out through the shared command path in `common`. One instance
//! decides at a time (a PostgreSQL lease); others are hot standbys.

pub mod alerts;
pub mod concurrency;
pub mod controller;
pub mod cycle;
pub mod event_repeat;
pub mod limits;
pub mod phase;
pub mod quantity;
pub mod settings;
pub mod snapshot;
pub mod startup;
pub mod zone;

pub use settings::AutomationSettings;
pub use startup::App;

/// The service name: metrics label, health report, lease holder prefix.
pub const SERVICE: &str = "automation-engine";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9401;

/// The lease whose holder decides (`leases.name`).
pub const LEASE_NAME: &str = "automation-engine.decisions";
