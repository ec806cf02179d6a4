-- etrusted-kit journal, SQLite schema version 3: deliveries, domain events and decisions.
--
-- The journal lives in the outbox's database so that one transaction records a delivery, its
-- domain events, the policy's decisions and their outbox entries: between a 2xx answer and the
-- outbox nothing can be lost or doubled. Rows are never deleted; customer data (the ``body``
-- JSON and the e-mail hashes) is set to NULL by purge, forget and erasure, and the skeleton
-- (kind, stream, times, keys, outcomes) stays for explain.

-- One row per delivery a platform made: unique on its transport ids, so a retried webhook
-- (same delivery id) and one event sent through two subscriptions (same event id) count once.
CREATE TABLE etk_deliveries (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event_id    TEXT,
    topic       TEXT,
    received_at REAL NOT NULL,
    skip_reason TEXT,  -- set when the adapter skipped the delivery on purpose
    skip_detail TEXT,
    UNIQUE (source, delivery_id)
);
CREATE UNIQUE INDEX etk_deliveries_event ON etk_deliveries (source, event_id)
    WHERE event_id IS NOT NULL;

-- The domain events, in arrival order (id) per stream. body: kit.domain.dump_event as JSON.
CREATE TABLE etk_journal_events (
    id          INTEGER PRIMARY KEY,
    delivery    INTEGER NOT NULL REFERENCES etk_deliveries (id),
    source      TEXT NOT NULL,
    stream      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    recorded_at REAL NOT NULL,
    email_hash  TEXT,
    body        TEXT
);
CREATE INDEX etk_journal_events_stream ON etk_journal_events (source, stream, id);
CREATE INDEX etk_journal_events_email ON etk_journal_events (email_hash)
    WHERE email_hash IS NOT NULL;

-- Every decision the policy took, with what carrying it out did (outcome). body:
-- kit.policy.dump_decision as JSON. invite_at: an enqueued invite's send_after, for the
-- per-customer throttle (found by email_hash).
CREATE TABLE etk_journal_decisions (
    id         INTEGER PRIMARY KEY,
    event      INTEGER NOT NULL REFERENCES etk_journal_events (id),
    source     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key        TEXT,
    outcome    TEXT NOT NULL,
    decided_at REAL NOT NULL,
    email_hash TEXT,
    invite_at  REAL,
    body       TEXT
);
CREATE INDEX etk_journal_decisions_stream ON etk_journal_decisions (source, stream, id);
CREATE INDEX etk_journal_decisions_key ON etk_journal_decisions (key) WHERE key IS NOT NULL;
CREATE INDEX etk_journal_invites ON etk_journal_decisions (email_hash, invite_at)
    WHERE email_hash IS NOT NULL;
