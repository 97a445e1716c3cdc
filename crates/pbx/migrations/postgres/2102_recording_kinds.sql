-- A call can have a second recording, the mono mix of both channels
-- ([recording] mixed_mono), with its own catalogue row. The kind joins the
-- call id in the primary key; existing rows are stereo recordings.
ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'stereo'
    CHECK (kind IN ('stereo', 'mixed_mono'));
ALTER TABLE recordings DROP CONSTRAINT recordings_pkey;
ALTER TABLE recordings ADD PRIMARY KEY (call_id, kind);
