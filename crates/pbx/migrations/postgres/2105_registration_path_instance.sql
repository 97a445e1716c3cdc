-- The Path (RFC 3327) and +sip.instance (RFC 5626) a binding registered
-- with, so that after a restart calls still go through the phone's proxies
-- and its public GRUU still reaches it. `path` holds the Path values top
-- first, one per line; '' means no Path.
ALTER TABLE registrations ADD COLUMN path TEXT NOT NULL DEFAULT '';
ALTER TABLE registrations ADD COLUMN instance TEXT;
