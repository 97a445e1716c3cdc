-- The dialogs of a call's answered legs, as JSON, so that the start after
-- a crash can send BYE on them. NULL for rows written before this column.
ALTER TABLE open_calls ADD COLUMN legs TEXT;
