-- etrusted-kit outbox, SQLite schema version 2: facts about the outbox as a whole.
--
-- 'moved_to': set by migrate-outbox once this outbox was copied to another database (the value
-- is where). From then on enqueue and claim refuse, so nothing is accepted or sent here again.
-- Version 1 kept that as a hold named 'migrated' with an expiry 100 years out; it is converted.
CREATE TABLE etk_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO etk_meta (name, value)
SELECT 'moved_to',
       CASE WHEN reason LIKE 'the outbox was moved to %; run flushers against that database'
            THEN substr(reason, 25, length(reason) - 24 - 36)
            ELSE reason END
FROM etk_holds WHERE name = 'migrated';

DELETE FROM etk_holds WHERE name = 'migrated';
