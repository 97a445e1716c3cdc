-- A call can have a second recording, the mono mix of both channels
-- ([recording] mixed_mono), with its own catalogue row. The kind joins the
-- call id in the primary key; SQLite cannot change a primary key, so the
-- table is rebuilt with every row copied as a stereo recording.
CREATE TABLE recordings_new (
    call_id          TEXT    NOT NULL,
    kind             TEXT    NOT NULL DEFAULT 'stereo'
        CHECK (kind IN ('stereo', 'mixed_mono')),
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
    deletion_reason  TEXT,
    PRIMARY KEY (call_id, kind)
);

INSERT INTO recordings_new (
    call_id, kind, path, status, started_at_ms, ended_at_ms, duration_seconds, size_bytes,
    sha256, deleted_at_ms, deletion_reason)
SELECT
    call_id, 'stereo', path, status, started_at_ms, ended_at_ms, duration_seconds, size_bytes,
    sha256, deleted_at_ms, deletion_reason
FROM recordings;

DROP TABLE recordings;
ALTER TABLE recordings_new RENAME TO recordings;
CREATE INDEX recordings_started ON recordings (started_at_ms);
CREATE INDEX recordings_status ON recordings (status, started_at_ms);
