-- Broker registry and failover (issue 5).

-- Every service keeps one connection per broker of the registry and follows
-- its changes without a restart: a change that matters to a connection (a
-- broker added, removed, enabled or disabled, or moved to another URL) is
-- announced on the channel `hydro_brokers`, payload the broker id. Status and
-- load figures change every few seconds and are not announced: nobody
-- reconnects because of them.
CREATE FUNCTION hydro_brokers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hydro_brokers', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER brokers_membership_notify
    AFTER INSERT OR DELETE ON brokers
    FOR EACH ROW EXECUTE FUNCTION hydro_brokers_notify();

CREATE TRIGGER brokers_connection_notify
    AFTER UPDATE OF url, enabled ON brokers
    FOR EACH ROW
    WHEN (OLD.url IS DISTINCT FROM NEW.url OR OLD.enabled IS DISTINCT FROM NEW.enabled)
    EXECUTE FUNCTION hydro_brokers_notify();

-- The `ts` of the config/update that announced the assignment (seconds).
-- Strictly increasing per node, so a node can tell a stale retained
-- config/update (left on a broker by an earlier move) from a new one, and a
-- status confirms a move only when it is at least this recent.
ALTER TABLE node_broker_assignments ADD COLUMN config_ts BIGINT NOT NULL DEFAULT 0;

-- The failover history is read newest first by the dashboard.
CREATE INDEX failover_events_started_idx ON failover_events (started_at DESC);
