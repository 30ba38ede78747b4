//! PostgreSQL (pool, migrations) and Redis, and the tables more than one
//! service reads or writes.

pub mod alerts;
pub mod brokers;
pub mod commands;
pub mod db;
pub mod failover_events;
pub mod leases;
pub mod node_accounts;
pub mod node_channels;
pub mod nodes;
pub mod recipe_phases;
pub mod redis;
pub mod schedule_fires;
pub mod zone_events;
pub mod zones;
