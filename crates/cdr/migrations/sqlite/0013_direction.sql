-- Who placed the call and who took it: inbound (a call to the centre),
-- outbound (a callback the PBX placed) or internal (an agent dialed
-- another agent's extension). Records written before this column were
-- inbound, except the callbacks, which name the call that requested them.
ALTER TABLE call_records ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
UPDATE call_records SET direction = 'outbound' WHERE callback_of IS NOT NULL;
