//! PostgreSQL (pool, migrations) and Redis, and the tables more than one
//! service reads or writes.

pub mod alerts;
pub mod broker_status_changes;
pub mod brokers;
pub mod db;
pub mod failover_events;
pub mod greenhouses;
pub mod leases;
pub mod node_accounts;
pub mod node_broker_assignments;
pub mod node_channels;
pub mod nodes;
pub mod recipe_phases;
pub mod recipes;
pub mod redis;
pub mod telemetry_last;
pub mod zone_channels;
pub mod zone_events;
pub mod zones;
