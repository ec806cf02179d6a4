-- Order feeds: who polls each source (applied with search_path set to the outbox schema).
--
-- Several serve replicas may share one outbox; each source's feed is polled by one of them at
-- a time. The holder renews its row well before expires_at; a holder that dies stops renewing,
-- and another replica takes the row over once it expired. Times are UTC epoch seconds, from
-- the replicas' clocks, as the outbox's own claim leases are.
CREATE TABLE feed_leases (
    source      text PRIMARY KEY,
    holder      text NOT NULL,  -- the serve process's owner name (host:pid:random)
    expires_at  double precision NOT NULL,
    acquired_at double precision NOT NULL  -- when this holder took it (kept across renewals)
);
