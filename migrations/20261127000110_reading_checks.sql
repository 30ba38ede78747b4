-- Issue 11 (readings are checked): telemetry_last never holds a reading from
-- the future. Before history-logger refused a `ts` more than
-- HISTORY_MAX_FUTURE_SKEW_SEC (default 5 min) ahead, one such reading became
-- its key's telemetry_last and froze it (a later, current reading never
-- replaced it). Those rows go; the key's next reading takes their place.
-- (A row still ahead of the clock within the skew is replaced by the next
-- reading whatever its `ts`: the logger's upsert rule.)
DELETE FROM telemetry_last WHERE ts > now() + interval '5 minutes';
