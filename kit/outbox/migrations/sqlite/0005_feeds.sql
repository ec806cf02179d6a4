-- etrusted-kit order feeds, SQLite schema version 5: one checkpoint per source and run.
--
-- A feed (polling under serve, or a backfill) reads a platform's orders sorted by their last
-- change. After each page whose orders are journaled, the newest change time on it is saved
-- here, so a run stopped at any point resumes from its last committed page (minus the overlap
-- window) instead of from the start. Times are UTC epoch seconds.
CREATE TABLE etk_feed_checkpoints (
    source     TEXT NOT NULL,
    run        TEXT NOT NULL,  -- 'poll', or 'backfill' (one backfill window at a time)
    since      REAL NOT NULL,  -- the run's window: orders changed from here ...
    until      REAL,           -- ... to here (NULL: up to now)
    high_water REAL,           -- newest change time of a committed page (NULL: none yet)
    pages      INTEGER NOT NULL DEFAULT 0,
    orders     INTEGER NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0,  -- 1 once the run read its window's last page
    saved_at   REAL NOT NULL,
    PRIMARY KEY (source, run)
);
