-- The dashboard's node table (issue 15) counts each node's commands of the
-- last hour. A BRIN index on created_at: commands are appended in created_at
-- order, so a few block ranges answer "the last hour" while an insert costs
-- almost nothing, and created_at is never updated (the SENT/ACK/final
-- updates stay HOT).
CREATE INDEX commands_created_brin ON commands USING brin (created_at);
