//! The bridge's HTTP routes.

pub mod commands;
