-- Calls that overflowed to a voicemail box get the disposition
-- 'voicemail' and name the box. SQLite cannot change a CHECK constraint,
-- so the table is rebuilt with every row copied. caller_answered_at is
-- when the PBX answered the caller, which differs from answered_at for a
-- caller answered to wait with music or to leave a message.
CREATE TABLE call_records_new (
    id                 TEXT    NOT NULL PRIMARY KEY,
    caller_call_id     TEXT    NOT NULL,
    agent_call_id      TEXT,
    caller             TEXT    NOT NULL,
    dialed             TEXT    NOT NULL,
    trunk              TEXT,
    source_extension   TEXT,
    queue              TEXT,
    agent              TEXT,
    arrived_at         TEXT    NOT NULL,
    arrived_at_ms      INTEGER NOT NULL,
    queued_at          TEXT,
    answered_at        TEXT,
    ended_at           TEXT    NOT NULL,
    wait_seconds       REAL    NOT NULL,
    talk_seconds       REAL    NOT NULL,
    disposition        TEXT    NOT NULL
        CHECK (disposition IN ('answered', 'abandoned', 'no_agent', 'failed', 'voicemail')),
    sip_status         INTEGER,
    hangup_side        TEXT
        CHECK (hangup_side IS NULL OR hangup_side IN ('caller', 'agent', 'system')),
    recording_path     TEXT,
    recording_seconds  REAL,
    interrupted        INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
    caller_answered_at TEXT,
    voicemail_box      TEXT
);

INSERT INTO call_records_new (
    id, caller_call_id, agent_call_id, caller, dialed, trunk, source_extension, queue, agent,
    arrived_at, arrived_at_ms, queued_at, answered_at, ended_at, wait_seconds, talk_seconds,
    disposition, sip_status, hangup_side, recording_path, recording_seconds, interrupted,
    caller_answered_at)
SELECT
    id, caller_call_id, agent_call_id, caller, dialed, trunk, source_extension, queue, agent,
    arrived_at, arrived_at_ms, queued_at, answered_at, ended_at, wait_seconds, talk_seconds,
    disposition, sip_status, hangup_side, recording_path, recording_seconds, interrupted,
    answered_at
FROM call_records;

DROP TABLE call_records;
ALTER TABLE call_records_new RENAME TO call_records;
CREATE INDEX call_records_arrived_at ON call_records (arrived_at_ms);
CREATE INDEX call_records_caller_call_id ON call_records (caller_call_id);
CREATE INDEX call_records_disposition ON call_records (disposition, arrived_at_ms);
