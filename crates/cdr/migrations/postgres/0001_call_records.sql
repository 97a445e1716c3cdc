-- One row per finished call. Timestamps are RFC 3339 text; arrived_at_ms
-- (unix milliseconds) exists so ordering does not depend on text offsets.
-- rowid stands in for SQLite's implicit rowid: it numbers rows in insert
-- order and breaks ties when two calls arrived in the same millisecond.
CREATE TABLE call_records (
    id                TEXT             NOT NULL PRIMARY KEY,
    rowid             BIGINT           GENERATED ALWAYS AS IDENTITY,
    caller_call_id    TEXT             NOT NULL,
    agent_call_id     TEXT,
    caller            TEXT             NOT NULL,
    dialed            TEXT             NOT NULL,
    trunk             TEXT,
    source_extension  TEXT,
    queue             TEXT,
    agent             TEXT,
    arrived_at        TEXT             NOT NULL,
    arrived_at_ms     BIGINT           NOT NULL,
    queued_at         TEXT,
    answered_at       TEXT,
    ended_at          TEXT             NOT NULL,
    wait_seconds      DOUBLE PRECISION NOT NULL,
    talk_seconds      DOUBLE PRECISION NOT NULL,
    disposition       TEXT             NOT NULL
        CONSTRAINT call_records_disposition_check
        CHECK (disposition IN ('answered', 'abandoned', 'no_agent', 'failed')),
    sip_status        BIGINT,
    hangup_side       TEXT
        CONSTRAINT call_records_hangup_side_check
        CHECK (hangup_side IS NULL OR hangup_side IN ('caller', 'agent', 'system')),
    recording_path    TEXT,
    recording_seconds DOUBLE PRECISION
);

CREATE INDEX call_records_arrived_at ON call_records (arrived_at_ms);
CREATE INDEX call_records_caller_call_id ON call_records (caller_call_id);
