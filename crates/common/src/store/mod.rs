//! PostgreSQL (pool, migrations) and Redis, and one module per table: the
//! only code that names its table in SQL (migrations and tests apart).

pub mod advisor_suggestions;
pub mod alerts;
pub mod broker_health_samples;
pub mod broker_status_changes;
pub mod brokers;
pub mod commands;
pub mod db;
pub mod failover_events;
pub mod greenhouses;
pub mod leases;
pub mod node_binds;
pub mod node_broker_assignments;
pub mod node_channels;
pub mod nodes;
pub mod operator_actions;
pub mod recipe_phases;
pub mod recipes;
pub mod redis;
pub mod registry_settings;
pub mod schedule_fires;
pub mod telemetry_last;
pub mod telemetry_samples;
pub mod zone_events;
pub mod zones;
