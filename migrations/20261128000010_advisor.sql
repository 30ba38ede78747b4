-- The advisor, its audit trail and the run-time strategy (issue 15).

-- What the advisor proposed (from its rules or from the optional language
-- model), refused (with the guard's reason) or applied. A suggestion the
-- rules or the model make again updates its open row (same fingerprint and
-- status) instead of adding one; an open proposal they no longer make is
-- 'superseded' and can no longer be applied.
CREATE TABLE advisor_suggestions (
    id              BIGSERIAL PRIMARY KEY,
    -- One of the advisor's kinds, or 'invalid' for a model answer that named
    -- none (kept, refused, for the operator to see).
    kind            TEXT NOT NULL CHECK (kind ~ '^[a-z_]{1,32}$'),
    source          TEXT NOT NULL CHECK (source IN ('rules', 'model')),
    summary         TEXT NOT NULL CHECK (char_length(summary) <= 2000),
    evidence        JSONB NOT NULL DEFAULT '{}',
    -- [{"node_uid","from","to"}]
    moves           JSONB NOT NULL DEFAULT '[]',
    strategy        TEXT,
    status          TEXT NOT NULL CHECK (status IN ('proposed', 'refused', 'applied', 'superseded')),
    refused_reason  TEXT,
    fingerprint     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at      TIMESTAMPTZ,
    applied_by      TEXT
);
CREATE UNIQUE INDEX advisor_suggestions_open_idx ON advisor_suggestions (fingerprint, status)
    WHERE status IN ('proposed', 'refused');
CREATE INDEX advisor_suggestions_seen_idx ON advisor_suggestions (seen_at DESC);

-- Every write made through broker-registry's API: who (the X-Operator
-- header, else 'api-token'; never the token itself), when, what, on what.
CREATE TABLE operator_actions (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 64),
    action  TEXT NOT NULL,
    target  TEXT,
    detail  JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX operator_actions_at_idx ON operator_actions (at DESC, id DESC);

-- Settings changed at run time that every instance follows (a restart
-- too): 'assignment_strategy' overrides ASSIGNMENT_STRATEGY once set.
CREATE TABLE registry_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by  TEXT
);
