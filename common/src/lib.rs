//! What two or more hydro services need, written once.

pub mod assignments;
pub mod balance;
pub mod batcher;
pub mod broker_status;
pub mod broker_watch;
pub mod brokers;
pub mod command_route;
pub mod command_status;
pub mod commands;
pub mod db;
pub mod http;
pub mod leader_ticks;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod node_config;
pub mod observed;
pub mod payloads;
pub mod probe;
pub mod publish_tracker;
pub mod recipe_fixtures;
pub mod recipe_phases;
pub mod redis_pool;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod signing;
pub mod status_writer;
pub mod testing;
pub mod topics;
pub mod zone_channels;
pub mod zone_events;

pub use rumqttc::v5::mqttbytes::QoS;
pub use rumqttc::v5::mqttbytes::v5::LastWill;
