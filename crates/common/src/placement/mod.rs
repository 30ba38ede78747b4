//! Which broker each node lives on: the strategies that choose, the move
//! protocol (assignments, NodeConfig pushes, what the nodes report), broker
//! status and the probes that measure it.

pub mod assignments;
pub mod balance;
pub mod broker_status;
pub mod node_config;
pub mod observed;
pub mod probe;
