//! What two or more hydro services need, written once.

pub mod batcher;
pub mod brokers;
pub mod command_status;
pub mod commands;
pub mod db;
pub mod http;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod payloads;
pub mod publish_tracker;
pub mod redis_pool;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod signing;
pub mod status_writer;
pub mod testing;
pub mod topics;

pub use rumqttc::v5::mqttbytes::QoS;
pub use rumqttc::v5::mqttbytes::v5::LastWill;
