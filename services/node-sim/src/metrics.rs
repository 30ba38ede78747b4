//! node-sim's metric names. Only node-sim records them, so they live here
//! rather than in `common::metrics`.

/// Counter: telemetry messages the broker acknowledged.
pub const TELEMETRY_PUBLISHED: &str = "sim_telemetry_published_total";
/// Counter: readings made (each handed to the node's link once, whether
/// sent at once, buffered, or later dropped from a full buffer).
pub const TELEMETRY_GENERATED: &str = "sim_telemetry_generated_total";
/// Counter: buffered readings dropped because the offline buffer was full.
pub const TELEMETRY_BUFFER_DROPPED: &str = "sim_telemetry_buffer_dropped_total";
/// Counter: acknowledged telemetry whose (node, channel, `ts`) key an
/// earlier acknowledged reading already had (two readings within one second
/// of `ts`); the store keeps only the first of them.
pub const TELEMETRY_REPEATED_KEYS: &str = "sim_telemetry_repeated_keys_total";
/// Counter, `result`: commands received, by what was answered (`done`,
/// `invalid`, `error` for one a firmware-mode node refused before running
/// it, `duplicate` for a redelivery, `undecodable` for one without a usable
/// `cmd_id`).
pub const COMMANDS_RECEIVED: &str = "sim_commands_received_total";
/// Counter, `reason`: config/updates (moves) a node refused and did not
/// apply (`unsigned`, `bad_signature`, `stale`, `future`, `invalid`).
pub const MOVES_REFUSED: &str = "sim_moves_refused_total";
/// Counter: commands whose responses a fault dropped.
pub const RESPONSES_DROPPED: &str = "sim_responses_dropped_total";
/// Counter, `kind`: publishes that failed (telemetry, heartbeat, status, response).
pub const PUBLISH_ERRORS: &str = "sim_publish_errors_total";
