-- Every queue and agent event, in the order the engine produced it. Reports
-- and KPIs are computed from these rows; the queue_log file is written from
-- the same batches. `at_ms` is Unix time in milliseconds, `at` the same
-- moment as RFC 3339 text in UTC, `data` the rest of the event as JSON.
-- `seq` comes from a sequence, so it only grows, as with SQLite's
-- AUTOINCREMENT. NOTE: with several nodes writing at once, a smaller `seq`
-- can commit after a larger one is visible, and an event stream that
-- resumes after the larger one misses it.
CREATE TABLE queue_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT,
    queue TEXT,
    agent TEXT,
    data TEXT NOT NULL
);

CREATE INDEX queue_events_kind_at ON queue_events (kind, at_ms);
CREATE INDEX queue_events_call ON queue_events (call_id);
