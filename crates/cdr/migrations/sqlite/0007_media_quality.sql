-- Reception figures of each leg of an answered call (packets, loss, jitter
-- and an estimated MOS), as one JSON object; NULL when the relay carried
-- nothing, and for records written before this column.
ALTER TABLE call_records ADD COLUMN media_quality TEXT;
