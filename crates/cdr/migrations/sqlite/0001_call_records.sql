-- One row per finished call. Timestamps are RFC 3339 text; arrived_at_ms
-- (unix milliseconds) exists so ordering does not depend on text offsets.
CREATE TABLE call_records (
    id                TEXT    NOT NULL PRIMARY KEY,
    caller_call_id    TEXT    NOT NULL,
    agent_call_id     TEXT,
    caller            TEXT    NOT NULL,
    dialed            TEXT    NOT NULL,
    trunk             TEXT,
    source_extension  TEXT,
    queue             TEXT,
    agent             TEXT,
    arrived_at        TEXT    NOT NULL,
    arrived_at_ms     INTEGER NOT NULL,
    queued_at         TEXT,
    answered_at       TEXT,
    ended_at          TEXT    NOT NULL,
    wait_seconds      REAL    NOT NULL,
    talk_seconds      REAL    NOT NULL,
    disposition       TEXT    NOT NULL
        CHECK (disposition IN ('answered', 'abandoned', 'no_agent', 'failed')),
    sip_status        INTEGER,
    hangup_side       TEXT
        CHECK (hangup_side IS NULL OR hangup_side IN ('caller', 'agent', 'system')),
    recording_path    TEXT,
    recording_seconds REAL
);

CREATE INDEX call_records_arrived_at ON call_records (arrived_at_ms);
CREATE INDEX call_records_caller_call_id ON call_records (caller_call_id);
