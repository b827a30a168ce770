-- Counters shared by every node when there is no Redis (`store::counters`): rate-limit
-- arrival times (GCRA) and AI quota counters. UNLOGGED: they are written on every
-- limited request, and skipping the WAL halves that cost. A crash of PostgreSQL (or a
-- failover) empties them; that is safe, as a lost arrival time allows at most one more
-- burst, and a day or month counter that is missing is rebuilt from the usage ledger,
-- which is logged. SQLite has no such tables: it serves one node, whose counters live in
-- its memory.
CREATE UNLOGGED TABLE rate_limit_tats (
    key TEXT PRIMARY KEY,
    -- Theoretical arrival time, ms since the epoch on the database server's clock.
    tat BIGINT NOT NULL
);

CREATE UNLOGGED TABLE ai_counters (
    key TEXT PRIMARY KEY,
    -- NULL only inside a reservation that found no ledger seed yet (never committed).
    value BIGINT,
    expires_ms BIGINT NOT NULL
);
