-- etrusted-kit order feeds, SQLite schema version 6: who polls each source.
--
-- Several serve processes may share one outbox; each source's feed is polled by one of them at
-- a time. The holder renews its row well before expires_at; a holder that dies stops renewing,
-- and another process takes the row over once it expired. Times are UTC epoch seconds.
CREATE TABLE etk_feed_leases (
    source      TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,  -- the serve process's owner name (host:pid:random)
    expires_at  REAL NOT NULL,
    acquired_at REAL NOT NULL   -- when this holder took it (kept across renewals)
);
