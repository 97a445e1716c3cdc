-- A caller who asks to be called back leaves a record with the disposition
-- 'callback'; the call the PBX later places to the citizen has its own
-- record naming the first one in callback_of.
ALTER TABLE call_records DROP CONSTRAINT call_records_disposition_check;
ALTER TABLE call_records ADD CONSTRAINT call_records_disposition_check
    CHECK (disposition IN
        ('answered', 'abandoned', 'no_agent', 'failed', 'voicemail', 'callback'));
ALTER TABLE call_records ADD COLUMN callback_of TEXT;
CREATE INDEX call_records_callback_of ON call_records (callback_of);
