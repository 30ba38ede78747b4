//! The wire contract between the nodes and the services: MQTT topics, the
//! JSON payloads, and the HMAC signing of commands and moves, exactly as the
//! hydro2.0 firmware speaks them (docs/protocol.md); and [`text_enum!`], the
//! enums of fixed texts that the contract and the services declare. No I/O
//! here: serde and hmac only.

pub mod payloads;
pub mod signing;
pub mod text_enum;
pub mod topics;
