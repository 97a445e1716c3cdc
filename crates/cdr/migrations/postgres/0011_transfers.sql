-- Transfers of an answered call by its agents, oldest first, as one JSON
-- array of the objects docs/cdr.md describes; NULL when the call was never
-- transferred, and for records written before this column.
ALTER TABLE call_records ADD COLUMN transfers TEXT;
