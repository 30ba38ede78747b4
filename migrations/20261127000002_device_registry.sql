-- device-registry (issue 10): a node's life from its first hello to its bind
-- to a zone (pending until the node's config_report confirms it), unbind and
-- decommission.

-- Where the node is in its life:
--   'REGISTERED':     known from its hello or temp-namespace uplink, not in a
--                     zone (or a bind to one is pending);
--   'ASSIGNED':       bound to a zone (confirmed by the node's config_report);
--   'DECOMMISSIONED': retired; its hello changes nothing and it cannot be bound.
ALTER TABLE nodes ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'REGISTERED'
    CHECK (lifecycle IN ('REGISTERED', 'ASSIGNED', 'DECOMMISSIONED'));
UPDATE nodes SET lifecycle = 'ASSIGNED' WHERE zone_id IS NOT NULL;

-- The lifecycle follows the zone, whoever writes it (seeds, node-sim, tests,
-- device-registry): a node placed in a zone is ASSIGNED, one taken out of its
-- zone REGISTERED; a decommissioned node stays so. Fires only on writes
-- that name zone_id, never on the hot status/heartbeat updates.
CREATE FUNCTION nodes_lifecycle_follows_zone() RETURNS trigger AS $$
BEGIN
    IF NEW.lifecycle <> 'DECOMMISSIONED' THEN
        NEW.lifecycle := CASE WHEN NEW.zone_id IS NULL THEN 'REGISTERED' ELSE 'ASSIGNED' END;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER nodes_lifecycle_follows_zone BEFORE INSERT OR UPDATE OF zone_id ON nodes
    FOR EACH ROW EXECUTE FUNCTION nodes_lifecycle_follows_zone();

-- The operator's name for the node ("PH Tank A").
ALTER TABLE nodes ADD COLUMN name TEXT CHECK (name IS NULL OR length(name) <= 128);
-- What the node declared in its last hello (sensor kinds, 'config_update').
ALTER TABLE nodes ADD COLUMN capabilities JSONB NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(capabilities) = 'array');
-- The latest reading per channel an unbound node sent in the temp namespace:
-- {"ph_sensor": {"metric": "PH", "value": 6.5, "ts": 1737979200}}.
ALTER TABLE nodes ADD COLUMN unbound_readings JSONB NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(unbound_readings) = 'object');

-- Binds of a node to a zone. PENDING until a config_report from the target
-- namespace (hydro/{gh}/{zone}/{node_uid}/config_report) names the same
-- greenhouse, zone and uid (then DONE), or until expires_at (then EXPIRED).
-- CANCELLED: replaced by another bind, an unbind or a decommission, or its
-- NodeConfig could not be published.
CREATE TABLE node_binds (
    id            BIGSERIAL PRIMARY KEY,
    node_id       BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    zone_id       BIGINT NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    node_uid      TEXT NOT NULL CHECK (node_uid ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name          TEXT CHECK (name IS NULL OR length(name) <= 128),
    -- The node's new HMAC key, sent in the NodeConfig; nodes.secret once DONE.
    secret        TEXT NOT NULL CHECK (length(secret) >= 32),
    -- The NodeConfig pushed (with its secret), republished on a retry.
    config        JSONB NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    -- Where it was pushed: the topic the node listened on, and the broker
    -- (NULL: every broker, the node's broker being unknown).
    config_topic  TEXT NOT NULL,
    broker_id     TEXT REFERENCES brokers (id) ON DELETE SET NULL,
    state         TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (state IN ('PENDING', 'DONE', 'EXPIRED', 'CANCELLED')),
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
-- At most one pending bind per node.
CREATE UNIQUE INDEX node_binds_pending_idx ON node_binds (node_id) WHERE state = 'PENDING';
CREATE INDEX node_binds_expiry_idx ON node_binds (expires_at) WHERE state = 'PENDING';
CREATE INDEX node_binds_node_idx ON node_binds (node_id, requested_at DESC);
