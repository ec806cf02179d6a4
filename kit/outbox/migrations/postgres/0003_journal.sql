-- The journal: deliveries, domain events and decisions (applied with search_path set to the
-- outbox schema, so names are unqualified).
--
-- It lives beside the outbox so that one transaction records a delivery, its domain events,
-- the policy's decisions and their outbox entries. Rows are never deleted; customer data (the
-- body JSON and the e-mail hashes) is set to NULL by purge, forget and erasure, and the
-- skeleton (kind, stream, times, keys, outcomes) stays for explain.

-- One row per delivery: a retried webhook (same delivery id) and one event sent through two
-- subscriptions (same event id) count once.
CREATE TABLE deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    delivery_id text NOT NULL,
    event_id    text,
    topic       text,
    received_at double precision NOT NULL,
    skip_reason text,
    skip_detail text,
    UNIQUE (source, delivery_id)
);
CREATE UNIQUE INDEX deliveries_event ON deliveries (source, event_id) WHERE event_id IS NOT NULL;

-- The domain events, in arrival order (id) per stream. body: kit.domain.dump_event as JSON.
CREATE TABLE journal_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery    bigint NOT NULL REFERENCES deliveries (id),
    source      text NOT NULL,
    stream      text NOT NULL,
    kind        text NOT NULL,
    occurred_at double precision NOT NULL,
    recorded_at double precision NOT NULL,
    email_hash  text,
    body        text
);
CREATE INDEX journal_events_stream ON journal_events (source, stream, id);
CREATE INDEX journal_events_email ON journal_events (email_hash) WHERE email_hash IS NOT NULL;

-- Every decision, with what carrying it out did (outcome); invite_at is an enqueued invite's
-- send_after, for the per-customer throttle (found by email_hash).
CREATE TABLE journal_decisions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event      bigint NOT NULL REFERENCES journal_events (id),
    source     text NOT NULL,
    stream     text NOT NULL,
    kind       text NOT NULL,
    key        text,
    outcome    text NOT NULL,
    decided_at double precision NOT NULL,
    email_hash text,
    invite_at  double precision,
    body       text
);
CREATE INDEX journal_decisions_stream ON journal_decisions (source, stream, id);
CREATE INDEX journal_decisions_key ON journal_decisions (key) WHERE key IS NOT NULL;
CREATE INDEX journal_invites ON journal_decisions (email_hash, invite_at)
    WHERE email_hash IS NOT NULL;
