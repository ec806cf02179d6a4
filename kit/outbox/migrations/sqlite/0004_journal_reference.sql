-- etrusted-kit journal, SQLite schema version 4: find an order's journal by its transaction
-- reference, for `etrusted-kit explain REF`.
--
-- The reference (a Shopify order's name, "#1001") is the merchant's own order number, not the
-- customer's: like the outbox's transaction_reference it stays when purge, forget or an erasure
-- request sets the event's body to NULL, so an erased order can still be explained.
ALTER TABLE etk_journal_events ADD COLUMN reference TEXT;

UPDATE etk_journal_events SET reference = json_extract(body, '$.order.reference')
WHERE body IS NOT NULL;

CREATE INDEX etk_journal_events_reference ON etk_journal_events (reference, source)
    WHERE reference IS NOT NULL;
