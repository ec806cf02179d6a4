-- Order feeds: one checkpoint per source and run (applied with search_path set to the outbox
-- schema, so names are unqualified).
--
-- After each page whose orders are journaled, the newest change time on it is saved here, so a
-- poll or backfill stopped at any point resumes from its last committed page (minus the
-- overlap window). Times are UTC epoch seconds.
CREATE TABLE feed_checkpoints (
    source     text NOT NULL,
    run        text NOT NULL,  -- 'poll', or 'backfill' (one backfill window at a time)
    since      double precision NOT NULL,
    until      double precision,  -- NULL: up to now
    high_water double precision,  -- NULL: no page committed yet
    pages      bigint NOT NULL DEFAULT 0,
    orders     bigint NOT NULL DEFAULT 0,
    done       boolean NOT NULL DEFAULT false,
    saved_at   double precision NOT NULL,
    PRIMARY KEY (source, run)
);
