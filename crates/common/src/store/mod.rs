//! PostgreSQL (pool, migrations) and Redis, and the tables more than one
//! service reads or writes.

pub mod alerts;
pub mod db;
pub mod failover_events;
pub mod leases;
pub mod node_accounts;
pub mod nodes;
pub mod recipe_phases;
pub mod redis;
pub mod telemetry_last;
pub mod telemetry_samples;
pub mod zone_channels;
pub mod zone_events;
pub mod zones;
