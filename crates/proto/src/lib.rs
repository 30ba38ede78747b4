//! The wire contract between the nodes and the services: MQTT topics, the
//! JSON payloads, and the HMAC signing of commands and moves, exactly as the
//! hydro2.0 firmware speaks them (docs/protocol.md). No I/O here: serde and
//! hmac only.

pub mod payloads;
pub mod signing;
pub mod topics;
