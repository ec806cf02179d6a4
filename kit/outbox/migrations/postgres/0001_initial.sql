-- The PostgreSQL outbox. Applied with search_path set to the outbox schema, inside the migration
-- transaction that holds the advisory lock, so names here are unqualified.
--
-- Times are double precision UTC epoch seconds, exactly the floats of kit.outbox.types: they
-- round-trip bit for bit (timestamptz would cut them to microseconds, so a dumped outbox would not
-- compare equal after a round trip), and they sort and compare the same as on SQLite.

-- One row per dedupe key: the ledger. Rows are never deleted, only their payload.
CREATE TABLE entries (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key                   text NOT NULL UNIQUE,
    state                 text NOT NULL CHECK (
        state IN ('pending', 'sending', 'in_doubt', 'delivered', 'dead', 'cancelled')
    ),
    event_type            text NOT NULL,
    channel_id            text NOT NULL,
    transaction_reference text NOT NULL,
    payload               text,
    payload_sha256        text,
    email_hash            text,
    attempt               integer NOT NULL DEFAULT 0,
    sends                 integer NOT NULL DEFAULT 0,
    due_at                double precision NOT NULL,
    created_at            double precision NOT NULL,
    updated_at            double precision NOT NULL,
    first_sent_at         double precision,
    in_doubt_since        double precision,
    event_ref             text,
    delivered_at          double precision,
    adopted               boolean NOT NULL DEFAULT false,
    blind_resends         integer NOT NULL DEFAULT 0,
    last_error            text,
    lease_owner           text,
    lease_expires_at      double precision
);

-- The claim reads one partial index per claimable state, in claim order, and stops after LIMIT
-- rows: its cost does not depend on how many rows wait behind them.
CREATE INDEX entries_claim_pending ON entries (due_at, id) WHERE state = 'pending';
CREATE INDEX entries_claim_sending ON entries (lease_expires_at, id) WHERE state = 'sending';
CREATE INDEX entries_claim_in_doubt ON entries (due_at, id) WHERE state = 'in_doubt';

-- Listing by state, and stats() without reading the payloads: per-state counts (index-only),
-- the oldest pending entry, the latest error, blind resends and adopted refs.
CREATE INDEX entries_state_id ON entries (state, id);
CREATE INDEX entries_pending_created ON entries (created_at) WHERE state = 'pending';
CREATE INDEX entries_errors ON entries (updated_at, id) WHERE last_error IS NOT NULL;
CREATE INDEX entries_resends ON entries (blind_resends) WHERE blind_resends > 0;
CREATE INDEX entries_adopted ON entries (id) WHERE adopted;

-- forget_customer() and purge() touch few rows; they must not scan the ledger.
CREATE INDEX entries_email_hash ON entries (email_hash) WHERE email_hash IS NOT NULL;
CREATE INDEX entries_purgeable ON entries (updated_at)
    WHERE payload IS NOT NULL AND state IN ('delivered', 'dead', 'cancelled');

-- The attempt log, in the order the attempts ended. entry_id has no REFERENCES on purpose:
-- entries are never deleted and every writer takes the id from the entries row it just updated
-- (finish) or joined (load), whereas the constraint's check would lock that row once more
-- (FOR KEY SHARE) for every line logged, on the hot path of delivery.
CREATE TABLE attempts (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id    bigint NOT NULL,
    attempt     integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('send', 'deferred', 'reconcile')),
    started_at  double precision NOT NULL,
    duration_ms double precision NOT NULL,
    outcome     text NOT NULL,
    http_status integer,
    error       text
);
CREATE INDEX attempts_entry ON attempts (entry_id, seq);

-- Fleet-wide brakes ("pace", "auth") shared by every flusher process.
CREATE TABLE holds (
    name   text PRIMARY KEY,
    until  double precision NOT NULL,
    reason text NOT NULL
);
