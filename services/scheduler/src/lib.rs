//! scheduler: irrigation and lighting from the recipe phases. Each tick
//! reads every zone's [`schedule`] (its [`time_spec`]s), works out the
//! [`slots`] due in the greenhouse's time zone, and fires each once through
//! the shared command path — the [`fires`] table's unique key makes "once"
//! hold across instances, restarts and late ticks. One instance fires at a
//! time (a PostgreSQL lease); others are hot standbys.

pub mod fires;
pub mod schedule;
pub mod settings;
pub mod slots;
pub mod startup;
pub mod tick;
pub mod time_spec;

pub use settings::SchedulerSettings;
pub use startup::App;

/// The service name: metrics label, health report, lease holder prefix.
pub const SERVICE: &str = "scheduler";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9402;

/// The lease whose holder fires (`leases.name`).
pub const LEASE_NAME: &str = "scheduler.firing";
