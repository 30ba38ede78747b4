//! PostgreSQL (pool, migrations) and Redis, and the tables more than one
//! service reads or writes.

pub mod advisor_suggestions;
pub mod alerts;
pub mod broker_health_samples;
pub mod broker_status_changes;
pub mod db;
pub mod failover_events;
pub mod leases;
pub mod node_accounts;
pub mod nodes;
pub mod operator_actions;
pub mod recipe_phases;
pub mod redis;
pub mod registry_settings;
pub mod zone_channels;
pub mod zone_events;
