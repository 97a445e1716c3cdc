-- Calls that overflowed to a voicemail box get the disposition
-- 'voicemail' and name the box. caller_answered_at is when the PBX
-- answered the caller, which differs from answered_at for a caller
-- answered to wait with music or to leave a message; older rows take
-- answered_at.
ALTER TABLE call_records DROP CONSTRAINT call_records_disposition_check;
ALTER TABLE call_records ADD CONSTRAINT call_records_disposition_check
    CHECK (disposition IN ('answered', 'abandoned', 'no_agent', 'failed', 'voicemail'));
ALTER TABLE call_records ADD COLUMN caller_answered_at TEXT;
ALTER TABLE call_records ADD COLUMN voicemail_box TEXT;
UPDATE call_records SET caller_answered_at = answered_at;
CREATE INDEX call_records_disposition ON call_records (disposition, arrived_at_ms);
