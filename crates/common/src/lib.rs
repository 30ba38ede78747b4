//! What two or more hydro services run, written once. The wire contract
//! itself (topics, payloads, signing) is the `proto` crate; test helpers are
//! `testkit` (a dev-dependency only).
//!
//! - [`runtime`]: the service base (build, serve, stop), shutdown, logging,
//!   leases and leader ticks, the HTTP surface (health, metrics, JSON
//!   errors, bearer tokens), group commit.
//! - [`mqtt`]: one broker connection (config, event loop, publish tracker),
//!   the pool of every broker and its watcher, node accounts on the brokers.
//! - [`store`]: PostgreSQL and Redis, and the tables more than one service
//!   reads.
//! - [`commands`]: the command send path: target, route, send, status.
//! - [`placement`]: which broker a node lives on: strategies, moves, broker
//!   status, probes, NodeConfig pushes.
//! - [`settings`], [`metrics`]: the environment and the metric names.

pub mod commands;
pub mod metrics;
pub mod mqtt;
pub mod placement;
pub mod runtime;
pub mod settings;
pub mod store;

pub use rumqttc::v5::mqttbytes::QoS;
pub use rumqttc::v5::mqttbytes::v5::LastWill;
