-- Pauses and resumes of a call's recording, in the order they happened,
-- so QA can tell why a span of the file is silent. offset_seconds counts
-- from the call's answered_at. actor is the API user name (source 'api')
-- or the id of the agent who keyed the code on the phone (source 'dtmf').
CREATE TABLE call_recording_events (
    call_id        TEXT    NOT NULL REFERENCES call_records (id),
    seq            INTEGER NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('pause', 'resume')),
    offset_seconds REAL    NOT NULL,
    at             TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('api', 'dtmf')),
    actor          TEXT    NOT NULL,
    PRIMARY KEY (call_id, seq)
);
