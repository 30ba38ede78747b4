-- What automation-engine and scheduler need beyond the first schema.

-- automation-engine looks up the last dose of each pump channel of a zone
-- every cycle ("no dose while the last one has no final status", "a minimum
-- interval between doses"). Partial: commands sent through the API or by the
-- scheduler do not pay for the entry.
CREATE INDEX commands_automation_last_idx
    ON commands (zone_id, channel, created_at DESC) WHERE source = 'automation';

-- scheduler: one row per (zone, kind, slot), written before the slot's
-- command is sent, so each slot fires once whatever the number of instances,
-- restarts or late ticks. `slot` is the instant the slot was due (its local
-- time in the greenhouse's time zone, as UTC). A slot found too late is
-- recorded `skipped` instead, with no command.
CREATE TABLE schedule_fires (
    zone_id     BIGINT NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('irrigation', 'lighting')),
    slot        TIMESTAMPTZ NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('fired', 'skipped')),
    -- The command sent for the slot; its row in `commands` has the status.
    cmd_id      TEXT CHECK (char_length(cmd_id) BETWEEN 1 AND 128),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, kind, slot),
    CHECK ((outcome = 'fired') = (cmd_id IS NOT NULL))
);
-- The scheduler reads the recent fires of every zone at each tick.
CREATE INDEX schedule_fires_slot_idx ON schedule_fires (slot);
