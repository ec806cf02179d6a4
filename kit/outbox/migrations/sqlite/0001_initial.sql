-- etrusted-kit outbox, SQLite schema version 1.
--
-- Every table is prefixed etk_ so the outbox can live inside an application's own database
-- (transactional enqueue). Times are UTC epoch seconds (REAL). The migration runner executes
-- this file statement by statement inside one BEGIN IMMEDIATE transaction and records the
-- version in etk_schema_version itself.
--
-- No `x IN (list)` in CHECK constraints or partial-index conditions: SQLite evaluates those with
-- a temporary b-tree built afresh for every row written, which made an INSERT cost three times
-- the instructions it does with the equivalent OR chains.

-- One row per dedupe key: the ledger. Rows are never deleted, only their payload is purged,
-- so id (the rowid) grows in insertion order.
CREATE TABLE etk_entries (
    id                    INTEGER PRIMARY KEY,
    key                   TEXT    NOT NULL UNIQUE,
    state                 TEXT    NOT NULL CHECK (state = 'pending' OR state = 'sending'
                              OR state = 'in_doubt' OR state = 'delivered' OR state = 'dead'
                              OR state = 'cancelled'),
    event_type            TEXT    NOT NULL,
    channel_id            TEXT    NOT NULL,
    transaction_reference TEXT    NOT NULL,
    payload               TEXT,
    payload_sha256        TEXT,
    email_hash            TEXT,
    attempt               INTEGER NOT NULL DEFAULT 0,
    sends                 INTEGER NOT NULL DEFAULT 0,
    due_at                REAL    NOT NULL,
    created_at            REAL    NOT NULL,
    updated_at            REAL    NOT NULL,
    first_sent_at         REAL,
    in_doubt_since        REAL,
    event_ref             TEXT,
    delivered_at          REAL,
    adopted               INTEGER NOT NULL DEFAULT 0 CHECK (adopted = 0 OR adopted = 1),
    blind_resends         INTEGER NOT NULL DEFAULT 0,
    last_error            TEXT,
    lease_owner           TEXT,
    lease_expires_at      REAL
);

-- claim: pending and in_doubt entries, oldest due first. A range scan with a LIMIT, so a claim
-- costs the same with a million pending rows as with ten thousand.
CREATE INDEX etk_entries_due ON etk_entries (state, due_at, id);

-- claim: sending entries whose lease ran out. Partial, so it holds only the few in flight and
-- costs nothing at enqueue.
CREATE INDEX etk_entries_lease ON etk_entries (lease_expires_at, id) WHERE state = 'sending';

-- No index on email_hash on purpose: the hashes are random, and keeping a random-order index
-- up to date halves bulk enqueue throughput. forget_customer (a rare GDPR request) scans instead.

-- purge: terminal entries that still carry a payload. Spelled with OR, not IN: SQLite builds
-- a temporary table for an IN list each time it checks the condition, and it checks it on every
-- write of a row (with IN, each delivery's result cost about twice as much CPU). PURGE repeats
-- this WHERE word for word, so the planner can prove the index covers it.
CREATE INDEX etk_entries_purgeable ON etk_entries (updated_at)
    WHERE payload IS NOT NULL AND (state = 'delivered' OR state = 'dead' OR state = 'cancelled');

-- stats: the latest error, blind resends and adopted refs without a scan of the payloads.
CREATE INDEX etk_entries_errors ON etk_entries (updated_at, id) WHERE last_error IS NOT NULL;
CREATE INDEX etk_entries_resends ON etk_entries (blind_resends) WHERE blind_resends > 0;
CREATE INDEX etk_entries_adopted ON etk_entries (id) WHERE adopted = 1;

-- The attempt log: one row per finished attempt, in the order they were recorded.
CREATE TABLE etk_attempts (
    id          INTEGER PRIMARY KEY,
    entry_id    INTEGER NOT NULL REFERENCES etk_entries (id),
    attempt     INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind = 'send' OR kind = 'deferred' OR kind = 'reconcile'),
    started_at  REAL    NOT NULL,
    duration_ms REAL    NOT NULL,
    outcome     TEXT    NOT NULL,
    http_status INTEGER,
    error       TEXT
);

CREATE INDEX etk_attempts_entry ON etk_attempts (entry_id, id);

-- Fleet-wide brakes on sending ("pace", "auth").
CREATE TABLE etk_holds (
    name   TEXT PRIMARY KEY,
    until  REAL NOT NULL,
    reason TEXT NOT NULL
);
