-- Holds during the answered call and the post-call survey. Hold seconds
-- are part of talk_seconds; survey and csat_score stay NULL for calls that
-- were offered no survey.
ALTER TABLE call_records ADD COLUMN hold_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN hold_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN survey TEXT;
ALTER TABLE call_records ADD COLUMN csat_score INTEGER;
CREATE INDEX call_records_csat_score ON call_records (csat_score);
