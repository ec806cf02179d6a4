-- The journal's transaction reference, to find an order's journal by it (`etrusted-kit
-- explain REF`). It is the merchant's order number, not customer data: like the outbox's
-- transaction_reference it stays when purge, forget or an erasure request clears the body.
ALTER TABLE journal_events ADD COLUMN reference text;

UPDATE journal_events SET reference = body::jsonb -> 'order' ->> 'reference'
WHERE body IS NOT NULL;

CREATE INDEX journal_events_reference ON journal_events (reference, source)
    WHERE reference IS NOT NULL;
