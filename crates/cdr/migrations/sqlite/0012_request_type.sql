-- Request type of the dialed DID, free text from the configuration; NULL
-- when the DID has none, and for records written before this column.
ALTER TABLE call_records ADD COLUMN request_type TEXT;
