//! failover: detects dead brokers — from failed probes, dropped
//! connections, silent nodes and unanswered commands, confirmed before
//! acting — and moves their nodes to healthy brokers; marks them GOOD again
//! when they answer for a while. One instance decides at a time (a
//! PostgreSQL lease); the others watch and take over when it dies.

pub mod actions;
pub mod detector;
pub mod settings;
pub mod signals;
pub mod startup;
pub mod watcher;

pub use settings::FailoverSettings;
pub use startup::App;

/// The service name: metrics label, health report, lease holder prefix and
/// default shared-subscription group.
pub const SERVICE: &str = "failover";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9404;
