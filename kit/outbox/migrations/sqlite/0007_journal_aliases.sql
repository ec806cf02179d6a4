-- etrusted-kit journal, SQLite schema version 7: the streams that recorded an id, indexed.
--
-- An event that knows only a payment's id (a Stripe refund or dispute names the charge, not the
-- invoice) is moved onto the stream whose events recorded that id in their ``aliases``
-- (kit.journal.core.link_steps). This table holds one row per (source, alias, event), so the
-- lookup reads an index instead of every event body of the source. A trigger fills it from the
-- body as stored, so every way a row gets into etk_journal_events (the intake, a move to
-- another outbox) fills it alike. An erased event keeps its alias rows (payment ids, like the
-- stream id the event row keeps), and the lookup ignores them, as it ignored erased bodies.
CREATE TABLE etk_journal_aliases (
    source TEXT NOT NULL,
    alias  TEXT NOT NULL,
    event  INTEGER NOT NULL REFERENCES etk_journal_events (id),
    stream TEXT NOT NULL,
    PRIMARY KEY (source, alias, event)
) WITHOUT ROWID;

CREATE TRIGGER etk_journal_events_aliases AFTER INSERT ON etk_journal_events
WHEN NEW.body IS NOT NULL AND json_type(NEW.body, '$.aliases') = 'array'
BEGIN
    INSERT OR IGNORE INTO etk_journal_aliases (source, alias, event, stream)
    SELECT NEW.source, value, NEW.id, NEW.stream FROM json_each(NEW.body, '$.aliases')
    WHERE type = 'text';
END;

INSERT OR IGNORE INTO etk_journal_aliases (source, alias, event, stream)
SELECT e.source, a.value, e.id, e.stream
FROM etk_journal_events AS e, json_each(e.body, '$.aliases') AS a
WHERE e.body IS NOT NULL AND a.type = 'text';
