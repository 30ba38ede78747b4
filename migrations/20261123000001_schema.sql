-- The whole schema of the contract's section 6, written once.
-- Names follow the Python system where it had them. Every status column has a
-- CHECK so a typo in code fails loudly instead of storing a state nobody reads.

-- ---------------------------------------------------------------- greenhouse
CREATE TABLE greenhouses (
    id          BIGSERIAL PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL DEFAULT 'UTC',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE zones (
    id             BIGSERIAL PRIMARY KEY,
    uid            TEXT NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9_.-]{1,64}$'),
    greenhouse_id  BIGINT NOT NULL REFERENCES greenhouses (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'PAUSED', 'DISABLED')),
    priority       TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'critical')),
    -- Per-zone overrides (controller limits, channel roles, ...).
    capabilities   JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(capabilities) = 'object'),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX zones_greenhouse_idx ON zones (greenhouse_id);

CREATE TABLE nodes (
    id                 BIGSERIAL PRIMARY KEY,
    uid                TEXT NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9_.-]{1,64}$'),
    -- NULL: registered from node_hello, not yet placed by an operator.
    zone_id            BIGINT REFERENCES zones (id) ON DELETE SET NULL,
    hardware_id        TEXT UNIQUE,
    type               TEXT NOT NULL DEFAULT 'unknown',
    status             TEXT NOT NULL DEFAULT 'UNKNOWN' CHECK (status IN ('ONLINE', 'OFFLINE', 'UNKNOWN')),
    last_seen_at       TIMESTAMPTZ,
    last_heartbeat_at  TIMESTAMPTZ,
    uptime_seconds     BIGINT CHECK (uptime_seconds >= 0),
    free_heap_bytes    BIGINT CHECK (free_heap_bytes >= 0),
    rssi               SMALLINT CHECK (rssi BETWEEN -100 AND 0),
    fw_version         TEXT,
    -- HMAC key for commands; NULL means NODE_DEFAULT_SECRET.
    secret             TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX nodes_zone_idx ON nodes (zone_id);

CREATE TABLE node_channels (
    id           BIGSERIAL PRIMARY KEY,
    node_id      BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    channel      TEXT NOT NULL CHECK (channel ~ '^[A-Za-z0-9_.-]{1,64}$'),
    type         TEXT NOT NULL CHECK (type IN ('sensor', 'actuator')),
    metric_type  TEXT,
    unit         TEXT,
    UNIQUE (node_id, channel)
);

-- ---------------------------------------------------------------- telemetry
-- The hot table. Its primary key is the contract's unique key, so a
-- redelivered message is a no-op (ON CONFLICT DO NOTHING). No foreign keys:
-- history-logger resolves uids to existing ids before it writes, and a
-- per-row FK check would cost the ingest path for nothing.
CREATE TABLE telemetry_samples (
    node_id      BIGINT NOT NULL,
    zone_id      BIGINT,
    channel      TEXT NOT NULL,
    metric_type  TEXT NOT NULL,
    value        DOUBLE PRECISION NOT NULL,
    raw          BIGINT,
    ts           TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, channel, metric_type, ts)
);
CREATE INDEX telemetry_samples_zone_ts_idx ON telemetry_samples (zone_id, ts);

-- The newest value per (node, channel, metric); never moves back in time.
CREATE TABLE telemetry_last (
    node_id      BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    channel      TEXT NOT NULL,
    metric_type  TEXT NOT NULL,
    zone_id      BIGINT REFERENCES zones (id) ON DELETE SET NULL,
    value        DOUBLE PRECISION NOT NULL,
    raw          BIGINT,
    stable       BOOLEAN,
    ts           TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, channel, metric_type)
);
CREATE INDEX telemetry_last_zone_idx ON telemetry_last (zone_id, metric_type);

-- ---------------------------------------------------------------- recipes
CREATE TABLE recipes (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE recipe_phases (
    id              BIGSERIAL PRIMARY KEY,
    recipe_id       BIGINT NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
    phase_index     INTEGER NOT NULL CHECK (phase_index >= 0),
    name            TEXT NOT NULL,
    duration_hours  DOUBLE PRECISION NOT NULL CHECK (duration_hours > 0),
    -- {"ph": {"target":5.8,"min":5.6,"max":6.0}, "ec": {...},
    --  "irrigation": {"times":"08:00,12:00","duration_sec":60},
    --  "lighting": {"window":"06:00-22:00"}}
    targets         JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(targets) = 'object'),
    UNIQUE (recipe_id, phase_index)
);

CREATE TABLE zone_recipe_instances (
    id                   BIGSERIAL PRIMARY KEY,
    zone_id              BIGINT NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    recipe_id            BIGINT NOT NULL REFERENCES recipes (id),
    current_phase_index  INTEGER NOT NULL DEFAULT 0 CHECK (current_phase_index >= 0),
    status               TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'PAUSED', 'COMPLETED')),
    started_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    phase_started_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one active recipe per zone.
CREATE UNIQUE INDEX zone_recipe_instances_active_idx ON zone_recipe_instances (zone_id) WHERE status = 'ACTIVE';

-- ---------------------------------------------------------------- commands
-- The command lifecycle (contract section 4): QUEUED -> SENT -> ACK -> one
-- final status. The "never backwards" rule is applied by the statements that
-- write statuses (see common::command_status::rank_sql); no SQL function, as
-- an inlined SQL function is parsed again on every execution of the hot path.
-- zone_id and node_id carry no foreign keys: every writer takes them from
-- the lookup it made just before the insert, and a per-row RI trigger cost
-- the command path a measured 7 % of PostgreSQL's time. A command keeps its
-- ids (history) if a node or zone is later deleted.
-- cmd_id is the key (the contract's unique command id): a second, surrogate
-- key would cost an index entry on every insert and final update.
CREATE TABLE commands (
    -- Checked against ^[A-Za-z0-9_-]{1,128}$ by every writer (payloads::validate_cmd_id);
    -- a regex CHECK here would run again on each of the row's status updates.
    cmd_id         TEXT PRIMARY KEY CHECK (char_length(cmd_id) BETWEEN 1 AND 128),
    zone_id        BIGINT,
    node_id        BIGINT,
    channel        TEXT NOT NULL,
    cmd            TEXT NOT NULL CHECK (char_length(cmd) BETWEEN 1 AND 64),
    params         JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    status         TEXT NOT NULL DEFAULT 'QUEUED' CHECK (status IN
                       ('QUEUED', 'SENT', 'ACK', 'DONE', 'ERROR', 'INVALID', 'BUSY', 'NO_EFFECT', 'TIMEOUT', 'SEND_FAILED')),
    source         TEXT NOT NULL CHECK (source IN ('api', 'automation', 'scheduler')),
    broker_id      TEXT,
    -- Fingerprint of the request that created the command, for idempotent retries.
    request_hash   TEXT,
    error_code     TEXT,
    error_message  TEXT,
    -- `details` of the final response, if the node sent any.
    result         JSONB,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at        TIMESTAMPTZ,
    ack_at         TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    -- A command is finished exactly when its status is final.
    CHECK ((status IN ('DONE', 'ERROR', 'INVALID', 'BUSY', 'NO_EFFECT', 'TIMEOUT', 'SEND_FAILED')) = (finished_at IS NOT NULL))
) WITH (fillfactor = 70);
-- The timeout sweeper's scan: only commands without a final status. Keyed on
-- finished_at (NULL exactly while the status is not final, by the CHECK
-- above) rather than on status, so the SENT and ACK updates touch no indexed
-- column and stay HOT updates (fillfactor leaves them room on the page).
CREATE INDEX commands_open_idx ON commands (created_at) WHERE finished_at IS NULL;
-- No index by zone or node yet: no query needs one, and each would cost the
-- insert and the final update of every command. Add them with the query.

-- ---------------------------------------------------------------- events and alerts
CREATE TABLE zone_events (
    id            BIGSERIAL PRIMARY KEY,
    zone_id       BIGINT REFERENCES zones (id) ON DELETE CASCADE,
    type          TEXT NOT NULL CHECK (type ~ '^[A-Z0-9_]{1,64}$'),
    payload_json  JSONB NOT NULL DEFAULT '{}',
    -- When the event happened (the node's clock where it reported one).
    server_ts     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX zone_events_zone_idx ON zone_events (zone_id, created_at);
CREATE INDEX zone_events_type_idx ON zone_events (type, created_at);

CREATE TABLE alerts (
    id           BIGSERIAL PRIMARY KEY,
    type         TEXT NOT NULL,
    zone_id      BIGINT REFERENCES zones (id) ON DELETE CASCADE,
    node_id      BIGINT REFERENCES nodes (id) ON DELETE CASCADE,
    broker_id    TEXT,
    details      JSONB NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'RESOLVED')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ,
    CHECK ((status = 'RESOLVED') = (resolved_at IS NOT NULL))
);
-- Raising an alert that is already active is a no-op, not a second row.
CREATE UNIQUE INDEX alerts_one_active_idx
    ON alerts (type, COALESCE(zone_id, 0), COALESCE(node_id, 0), COALESCE(broker_id, ''))
    WHERE status = 'ACTIVE';

-- ---------------------------------------------------------------- brokers
CREATE TABLE brokers (
    id            TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    url           TEXT NOT NULL UNIQUE CHECK (url ~ '^mqtts?://'),
    role          TEXT NOT NULL DEFAULT 'primary' CHECK (role IN ('primary', 'standby', 'optional', 'dedicated')),
    status        TEXT NOT NULL DEFAULT 'GOOD' CHECK (status IN ('GOOD', 'DEGRADED', 'CRITICAL', 'OFFLINE')),
    enabled       BOOLEAN NOT NULL DEFAULT true,
    draining      BOOLEAN NOT NULL DEFAULT false,
    load_index    DOUBLE PRECISION NOT NULL DEFAULT 0,
    connections   INTEGER NOT NULL DEFAULT 0,
    msgs_per_sec  DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_ms    DOUBLE PRECISION,
    last_seen_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE broker_health_samples (
    id            BIGSERIAL PRIMARY KEY,
    broker_id     TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    sampled_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    probe_ok      BOOLEAN NOT NULL,
    latency_ms    DOUBLE PRECISION,
    connections   INTEGER,
    msgs_per_sec  DOUBLE PRECISION,
    retained      INTEGER,
    uptime_sec    BIGINT,
    disconnects   INTEGER NOT NULL DEFAULT 0,
    load_index    DOUBLE PRECISION,
    status        TEXT NOT NULL CHECK (status IN ('GOOD', 'DEGRADED', 'CRITICAL', 'OFFLINE'))
);
CREATE INDEX broker_health_samples_idx ON broker_health_samples (broker_id, sampled_at);

-- Every change of a broker's status, for the dashboard and the on-call engineer.
CREATE TABLE broker_status_changes (
    id           BIGSERIAL PRIMARY KEY,
    broker_id    TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    from_status  TEXT CHECK (from_status IN ('GOOD', 'DEGRADED', 'CRITICAL', 'OFFLINE')),
    to_status    TEXT NOT NULL CHECK (to_status IN ('GOOD', 'DEGRADED', 'CRITICAL', 'OFFLINE')),
    reason       TEXT,
    changed_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX broker_status_changes_idx ON broker_status_changes (broker_id, changed_at);

-- The node -> broker mapping; a node without a row uses the default broker.
CREATE TABLE node_broker_assignments (
    node_id             BIGINT PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    broker_id           TEXT NOT NULL REFERENCES brokers (id),
    strategy            TEXT NOT NULL CHECK (strategy IN ('static', 'dynamic', 'priority', 'manual', 'failover')),
    assigned_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when the node's status arrives on the new broker.
    confirmed_at        TIMESTAMPTZ,
    previous_broker_id  TEXT REFERENCES brokers (id)
);
CREATE INDEX node_broker_assignments_broker_idx ON node_broker_assignments (broker_id);

CREATE TABLE failover_events (
    id           BIGSERIAL PRIMARY KEY,
    broker_id    TEXT NOT NULL REFERENCES brokers (id),
    kind         TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    nodes_moved  INTEGER NOT NULL DEFAULT 0 CHECK (nodes_moved >= 0),
    details      JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX failover_events_broker_idx ON failover_events (broker_id, started_at);

-- ---------------------------------------------------------------- leases
-- Singleton jobs (timeout sweeper, failover, assignment, scheduler firing):
-- the holder renews before expires_at; anyone may take an expired lease.
CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
