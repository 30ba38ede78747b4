-- Real nodes (issue 10): where a node really is, how it can be moved, the
-- NodeConfig it runs, and what the firmware reports that we used to drop.

-- A node may announce RESTARTING before a reboot (firmware status payload).
ALTER TABLE nodes DROP CONSTRAINT nodes_status_check;
ALTER TABLE nodes ADD CONSTRAINT nodes_status_check
    CHECK (status IN ('ONLINE', 'OFFLINE', 'RESTARTING', 'UNKNOWN'));

-- Where the node really is: the broker its uplink (status, telemetry,
-- heartbeat, config_report, ...) last arrived on, and when. Commands go
-- there; a status or last will from any other broker changes nothing.
ALTER TABLE nodes ADD COLUMN observed_broker_id TEXT REFERENCES brokers (id) ON DELETE SET NULL;
ALTER TABLE nodes ADD COLUMN observed_at TIMESTAMPTZ;
CREATE INDEX nodes_observed_broker_idx ON nodes (observed_broker_id);

-- How the node can be moved to another broker:
--   'config_update': it follows a retained nodes/{node}/config/update with
--                    fallbacks (node-sim's classic mode declares it);
--   'node_config':   a NodeConfig push with a new mqtt host/port, confirmed
--                    by config_report from the new broker (the firmware);
--   'none':          it cannot be moved (not yet bound, or unknown).
ALTER TABLE nodes ADD COLUMN move_via TEXT NOT NULL DEFAULT 'node_config'
    CHECK (move_via IN ('config_update', 'node_config', 'none'));

-- The NodeConfig the node last reported (config_report, without its secret).
ALTER TABLE nodes ADD COLUMN config JSONB CHECK (config IS NULL OR jsonb_typeof(config) = 'object');
ALTER TABLE nodes ADD COLUMN config_reported_at TIMESTAMPTZ;
