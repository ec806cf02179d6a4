-- The streams that recorded an id, indexed (applied with search_path set to the outbox schema).
--
-- An event that knows only a payment's id (a Stripe refund or dispute names the charge, not the
-- invoice) is moved onto the stream whose events recorded that id in their ``aliases``
-- (kit.journal.core.link_steps). This table holds one row per (source, alias, event), so the
-- lookup reads an index instead of every event body of the source. A trigger fills it from the
-- body as stored, so every way a row gets into journal_events (the intake, a move to another
-- outbox) fills it alike. An erased event keeps its alias rows (payment ids, like the stream id
-- the event row keeps), and the lookup ignores them, as it ignored erased bodies.
CREATE TABLE journal_aliases (
    source text NOT NULL,
    alias  text NOT NULL,
    event  bigint NOT NULL REFERENCES journal_events (id),
    stream text NOT NULL,
    PRIMARY KEY (source, alias, event)
);

-- search_path is fixed at creation, so the trigger finds the outbox schema's table whatever
-- the inserting session's search_path is.
CREATE FUNCTION journal_events_aliases() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF jsonb_typeof(NEW.body::jsonb -> 'aliases') = 'array' THEN
        INSERT INTO journal_aliases (source, alias, event, stream)
        SELECT NEW.source, a.value #>> '{}', NEW.id, NEW.stream
        FROM jsonb_array_elements(NEW.body::jsonb -> 'aliases') AS a
        WHERE jsonb_typeof(a.value) = 'string'
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER journal_events_aliases AFTER INSERT ON journal_events
FOR EACH ROW WHEN (NEW.body IS NOT NULL) EXECUTE FUNCTION journal_events_aliases();

INSERT INTO journal_aliases (source, alias, event, stream)
SELECT e.source, a.value #>> '{}', e.id, e.stream
FROM journal_events AS e, jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.body::jsonb -> 'aliases') = 'array'
         THEN e.body::jsonb -> 'aliases' ELSE '[]'::jsonb END) AS a
WHERE e.body IS NOT NULL AND jsonb_typeof(a.value) = 'string'
ON CONFLICT DO NOTHING;
