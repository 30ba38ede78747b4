//! history-logger: every node uplink into PostgreSQL, fast, with nothing lost
//! and nothing doubled.
//!
//! MQTT (shared subscriptions on every broker) → [`ingest`] validates and
//! appends to a Redis stream, then acknowledges to the broker → [`writer`]
//! reads the stream with a consumer group in batches, writes PostgreSQL
//! ([`telemetry`], [`node_state`]) and acknowledges the entries only after the
//! commit. Time requests are answered straight from ingest ([`time_sync`]).

pub mod backpressure;
pub mod dead_letter;
pub mod drop_log;
pub mod ingest;
pub mod monitor;
pub mod node_state;
pub mod observed;
pub mod pack;
pub mod queue;
pub mod resolver;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod time_sync;
pub mod uplink;
pub mod writer;

pub use settings::HistorySettings;
pub use startup::App;

/// The service name: health report, MQTT client prefix, default
/// shared-subscription group and consumer group.
pub const SERVICE: &str = "history-logger";

/// The contract's default port.
pub const DEFAULT_PORT: u16 = 9300;
