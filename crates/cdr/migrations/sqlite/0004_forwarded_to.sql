-- Number or extension a queue forwarded the call to (a "number:" overflow).
ALTER TABLE call_records ADD COLUMN forwarded_to TEXT;
