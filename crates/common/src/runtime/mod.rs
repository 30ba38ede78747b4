//! What every service runs on: the service base (build, serve, stop),
//! shutdown, logging, leases and leader ticks, the HTTP surface (health,
//! metrics, JSON errors, bearer tokens) and group commit.

pub mod api_error;
pub mod auth;
pub mod backoff;
pub mod batcher;
pub mod http;
pub mod leader_ticks;
pub mod lease;
pub mod logging;
pub mod service;
pub mod shutdown;
