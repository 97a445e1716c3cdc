-- The recording catalogue: one row per call recording, from the moment the
-- relay starts writing it until retention deletes it. The row outlives the
-- file so that the API can tell a deleted recording from a missing one.
-- Version 2100 leaves 2003 and up free for this crate's other tables.
CREATE TABLE recordings (
    call_id          TEXT    NOT NULL PRIMARY KEY,
    -- Relative to the data directory, as in call_records.recording_path.
    path             TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('recording', 'complete', 'interrupted', 'deleted')),
    started_at_ms    INTEGER NOT NULL,
    ended_at_ms      INTEGER,
    duration_seconds REAL,
    size_bytes       INTEGER CHECK (size_bytes >= 0),
    -- Lowercase hex SHA-256 of the finished (or repaired) file.
    sha256           TEXT,
    deleted_at_ms    INTEGER,
    deletion_reason  TEXT
);

CREATE INDEX recordings_started ON recordings (started_at_ms);
CREATE INDEX recordings_status ON recordings (status, started_at_ms);
