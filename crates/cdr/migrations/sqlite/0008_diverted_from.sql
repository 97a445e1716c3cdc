-- Number the citizen first dialed when a carrier redirected the call to the
-- centre (SIP Diversion), in E.164 when the trunk has a numbering plan.
ALTER TABLE call_records ADD COLUMN diverted_from TEXT;
