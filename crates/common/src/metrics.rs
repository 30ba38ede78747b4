//! Metric names, defined once. Prometheus style: `_total` for counters,
//! `_seconds` for durations; labels are bounded (route patterns, broker ids,
//! reasons — never a full topic or URI).

/// Gauge, `broker`: 1 while the process is connected to the broker.
pub const MQTT_CONNECTED: &str = "mqtt_connected";
/// Counter, `broker`: connections lost.
pub const MQTT_RECONNECTS: &str = "mqtt_reconnects_total";
/// Counter, `broker`, `reason`: publishes that failed.
pub const MQTT_PUBLISH_ERRORS: &str = "mqtt_publish_errors_total";

/// Counter, `route`, `method`, `status`: HTTP requests answered.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Histogram, `route`, `method`: time to answer an HTTP request.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Counter, `source`: commands written (QUEUED).
pub const COMMANDS_CREATED: &str = "commands_created_total";
/// Counter, `status`: commands that reached a final status.
pub const COMMANDS_FINISHED: &str = "commands_finished_total";
/// Counter, `broker`, `reason`: command publishes that failed (SEND_FAILED).
pub const COMMAND_PUBLISH_ERRORS: &str = "command_publish_errors_total";
/// Histogram, `stage` (`insert`, `publish`, `mark_sent`): time each stage of
/// the send path takes.
pub const COMMAND_STAGE_DURATION: &str = "command_stage_duration_seconds";
/// Counter: group-committed command inserts the database refused, retried
/// row by row so only the bad row fails.
pub const COMMAND_INSERT_BATCH_SPLITS: &str = "command_insert_batch_splits_total";
/// Counter, `status`: command responses received from nodes.
pub const COMMAND_RESPONSES: &str = "command_responses_total";
/// Counter, `reason`: command responses that could not be used.
pub const COMMAND_RESPONSES_DROPPED: &str = "command_responses_dropped_total";
/// Counter, `reason`: command responses mqtt-bridge dropped without
/// touching a command (`unknown_command`, `wrong_node`, `wrong_channel`,
/// `wrong_zone`, and every reason of [`COMMAND_RESPONSES_DROPPED`]).
pub const BRIDGE_RESPONSES_DROPPED: &str = "bridge_responses_dropped_total";
/// Histogram: command status changes applied per database statement.
pub const COMMAND_STATUS_BATCH_SIZE: &str = "command_status_batch_size";

/// Gauge, `lease`: 1 while this process holds the lease.
pub const LEASE_HELD: &str = "lease_held";

// ---------------------------------------------------------------- load balancing and failover

/// Gauge, `broker`: 0 GOOD, 1 DEGRADED, 2 CRITICAL, 3 OFFLINE.
pub const BROKER_STATUS: &str = "broker_status";
/// Gauge, `broker`: the broker's load index (see broker-registry's `load_index`).
pub const BROKER_LOAD_INDEX: &str = "broker_load_index";
/// Gauge, `broker`: nodes assigned to the broker.
pub const BROKER_NODES: &str = "broker_nodes";
/// Gauge: nodes bound to a zone (lifecycle `ASSIGNED`) whose last status is
/// OFFLINE — their last will fired, or they said so. Set by broker-registry's
/// health monitor each sample.
pub const NODES_OFFLINE: &str = "nodes_offline";
/// Histogram, `broker`: round-trip probe latency.
pub const BROKER_PROBE_DURATION: &str = "broker_probe_duration_seconds";
/// Counter, `broker`: probes that failed.
pub const BROKER_PROBE_FAILURES: &str = "broker_probe_failures_total";
/// Counter, `strategy`: node assignments written (new nodes and moves).
pub const NODE_MOVES: &str = "node_moves_total";
/// Counter: moves confirmed by the node's status on its new broker.
pub const NODE_MOVES_CONFIRMED: &str = "node_moves_confirmed_total";
/// Counter, `broker`: failovers carried out (a broker declared OFFLINE).
pub const FAILOVERS: &str = "failovers_total";
/// Counter, `outcome` (`waited`, `rerouted`, `gave_up`, `republished`):
/// commands whose node was moving or whose broker failed, and what the send
/// path (or mqtt-bridge's redelivery of stranded commands) did about it.
pub const COMMAND_REROUTES: &str = "command_reroutes_total";

/// Histogram buckets for request and publish latencies (seconds): fine below
/// 50 ms, where the command path should live.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets for [`TELEMETRY_LAG`] (seconds): a reading's way from
/// the node's clock to the commit spans seconds normally and minutes when
/// the writer falls behind, which the alert at 60 s must be able to see.
pub const LAG_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

// ---------------------------------------------------------------- history-logger

/// Counter, `kind` (topic kind): uplink messages received from the brokers.
pub const UPLINK_RECEIVED: &str = "uplink_received_total";
/// Counter, `reason`: uplink messages dropped into the dead-letter list
/// (`invalid_json`, `invalid_field`, `oversized`, `bad_topic`,
/// `node_id_not_found`, `zone_id_not_found`, `db_rejected`).
pub const TELEMETRY_DROPPED: &str = "telemetry_dropped_total";
/// Counter: telemetry rows inserted (redeliveries not counted).
pub const TELEMETRY_INSERTED: &str = "telemetry_inserted_total";
/// Counter: readings that repeated one already stored (same node, channel,
/// metric, second, value and raw): a redelivery, absorbed by the row's key.
pub const TELEMETRY_REDELIVERED: &str = "telemetry_redelivered_total";
/// Gauge: entries waiting in the uplink queue (Redis stream).
pub const UPLINK_QUEUE_LENGTH: &str = "uplink_queue_length";
/// Gauge: age of the oldest entry in the uplink queue, in seconds.
pub const UPLINK_QUEUE_OLDEST_AGE: &str = "uplink_queue_oldest_age_seconds";
/// Gauge: 0 normal, 1 above 90 % of the bound, 2 full (not acknowledging).
pub const UPLINK_QUEUE_PRESSURE: &str = "uplink_queue_pressure";
/// Histogram: queue entries written to PostgreSQL per batch.
pub const UPLINK_BATCH_SIZE: &str = "uplink_batch_size";
/// Histogram: time to write one batch to PostgreSQL and acknowledge it.
pub const UPLINK_FLUSH_DURATION: &str = "uplink_flush_duration_seconds";
/// Counter: batch writes that failed on a database error (retried).
pub const UPLINK_DB_ERRORS: &str = "uplink_db_errors_total";
/// Counter: Redis operations of the uplink path that failed (retried).
pub const UPLINK_REDIS_ERRORS: &str = "uplink_redis_errors_total";
/// Histogram: from a reading's `ts` to the commit of its row, in seconds.
pub const TELEMETRY_LAG: &str = "telemetry_end_to_end_lag_seconds";

// history-logger, issue 10 (real nodes): time sync, unbound nodes, status trust.

/// Counter, `broker`: `hydro/time/request` messages received (each answered once).
pub const TIME_REQUESTS: &str = "time_requests_total";
/// Counter, `broker`, `reason` (`no_connection` or the MQTT error): time
/// requests left unanswered.
pub const TIME_RESPONSE_FAILURES: &str = "time_response_failures_total";
/// Histogram: from a time request leaving the inbox to its answer's PUBACK.
pub const TIME_RESPONSE_DURATION: &str = "time_response_duration_seconds";
/// Counter, `kind` (topic kind): uplink of unbound nodes (temp namespace),
/// acknowledged and left to device-registry.
pub const UPLINK_UNBOUND: &str = "uplink_unbound_total";
/// Counter, `reason` (`other_broker`, `stale`): statuses and last wills that
/// changed nothing because they did not come from where the node is.
pub const NODE_STATUS_IGNORED: &str = "node_status_ignored_total";

// ---------------------------------------------------------------- automation-engine

/// Histogram: time one automation cycle takes (every zone with a recipe).
pub const AUTOMATION_CYCLE_DURATION: &str = "automation_cycle_duration_seconds";
/// Gauge: zones with an active recipe in the last cycle.
pub const AUTOMATION_ZONES: &str = "automation_zones";
/// Gauge: zones processed at once, from `total_zones × avg_zone_time /
/// target_cycle_time`, clamped to 5..50.
pub const OPTIMAL_CONCURRENCY: &str = "optimal_concurrency";
/// Histogram: time to process one zone (decide, and send what it decided).
pub const ZONE_PROCESSING_TIME: &str = "zone_processing_time_seconds";
/// Counter, `zone` (zone uid): zones whose processing failed in a cycle.
pub const ZONE_PROCESSING_ERRORS: &str = "zone_processing_errors_total";
/// Counter, `quantity` (`ph`, `ec`), `decision` (`dose` or the skip reason).
pub const AUTOMATION_DECISIONS: &str = "automation_decisions_total";

// ---------------------------------------------------------------- scheduler

/// Counter, `kind` (`irrigation`, `lighting`): slots fired (commands sent).
pub const SCHEDULE_EXECUTIONS: &str = "schedule_executions_total";
/// Gauge, `kind`: zones with a valid schedule of that kind.
pub const ACTIVE_SCHEDULES: &str = "active_schedules";
/// Counter, `kind`: slots found too late to fire (older than the catch-up age).
pub const SCHEDULE_MISSED_SLOTS: &str = "schedule_missed_slots_total";
/// Histogram: time one scheduler tick takes.
pub const SCHEDULE_TICK_DURATION: &str = "schedule_tick_duration_seconds";

// ---------------------------------------------------------------- device-registry

/// Counter, `outcome` (`registered`, `known`, `decommissioned`): node hellos.
pub const DEVICE_HELLOS: &str = "device_registry_hellos_total";
/// Counter, `kind` (topic kind): uplink from unbound nodes in the temp
/// namespace (counted, never dead-lettered).
pub const DEVICE_UNBOUND_MESSAGES: &str = "device_registry_unbound_messages_total";
/// Counter, `reason` (`bad_topic`, `invalid_json`, `invalid_field`,
/// `oversized`, `unknown_node`, `decommissioned`, `db_error`): messages the
/// registry could not use.
pub const DEVICE_MESSAGES_DROPPED: &str = "device_registry_messages_dropped_total";
/// Counter, `outcome` (`stored`, `bind_completed`): config reports used.
pub const DEVICE_CONFIG_REPORTS: &str = "device_registry_config_reports_total";
/// Counter, `outcome` (`requested`, `retried`, `already_bound`, `completed`,
/// `expired`, `cancelled`, `publish_failed`): binds of nodes to zones.
pub const DEVICE_BINDS: &str = "device_registry_binds_total";
/// Counter, `reason` (`bind`, `unbind`, `push`), `outcome` (`ok`, `failed`):
/// NodeConfig publications.
pub const DEVICE_CONFIG_PUSHES: &str = "device_registry_config_pushes_total";
/// Gauge: binds waiting for the node's config_report.
pub const DEVICE_PENDING_BINDS: &str = "device_registry_pending_binds";
/// Counter, `broker`, `outcome` (`created`, `updated`, `deleted`,
/// `unchanged`): node broker accounts brought in line by a sync.
pub const DEVICE_ACCOUNTS_SYNCED: &str = "device_registry_accounts_synced_total";
/// Counter, `broker`, `reason` (`not_connected`, `timeout`, `refused`,
/// `command`, `db_error`): account syncs (or commands in one) that failed.
pub const DEVICE_ACCOUNT_SYNC_ERRORS: &str = "device_registry_account_sync_errors_total";

// ---------------------------------------------------------------- placement (issue 10: balancing that follows the node)

/// Counter: NodeConfig pushes naming a new broker (moves of firmware nodes).
pub const NODE_CONFIG_MOVES: &str = "node_config_moves_total";
/// Gauge: nodes stranded on an OFFLINE broker (they cannot be moved; shown
/// until they are observed on a broker again).
pub const NODES_STRANDED: &str = "nodes_stranded";
/// Counter: assignments that followed where a node was observed (a node that
/// cannot follow config/update seen on another broker, or a move not made in
/// time taken back).
pub const ASSIGNMENTS_FOLLOWED: &str = "assignments_followed_observation_total";
