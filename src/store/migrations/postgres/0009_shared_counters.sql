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

-- One AI quota reservation, all or nothing, in one round trip (the Redis script's twin;
-- `ai::meter::judge` is the same rule in Rust). Row locks are held only while it runs,
-- so one caller's concurrent calls queue for microseconds, not for round trips.
-- Arguments are parallel arrays, one element per counter; a NULL seed means the ledger
-- total is not known yet. Returns the counters' values before the reservation (in the
-- order given), or NULL when a counter is missing and its seed unknown (the caller asks
-- the ledger and calls again). The amounts are added only when every counter fits:
-- value + amount <= limit.
CREATE FUNCTION tollgate_reserve(
    p_keys TEXT[], p_seeds BIGINT[], p_expires BIGINT[], p_amounts BIGINT[], p_limits BIGINT[]
) RETURNS BIGINT[] LANGUAGE plpgsql AS $fn$
DECLARE
    vals BIGINT[] := array_fill(NULL::BIGINT, ARRAY[cardinality(p_keys)]);
    r RECORD;
BEGIN
    IF EXISTS (
        SELECT 1 FROM unnest(p_keys, p_seeds) AS w(k, s)
        WHERE s IS NULL AND NOT EXISTS (SELECT 1 FROM ai_counters c WHERE c.key = w.k)
    ) THEN
        RETURN NULL;
    END IF;
    -- Creates what is missing and locks every row, in key order (as `settle` locks
    -- them), so reservations sharing counters cannot deadlock.
    FOR r IN
        INSERT INTO ai_counters AS c (key, value, expires_ms)
        SELECT k, s, e FROM unnest(p_keys, p_seeds, p_expires) AS w(k, s, e) ORDER BY k
        ON CONFLICT (key) DO UPDATE SET expires_ms = GREATEST(c.expires_ms, EXCLUDED.expires_ms)
        RETURNING c.key, c.value
    LOOP
        vals[array_position(p_keys, r.key)] := r.value;
    END LOOP;
    -- A counter deleted since the check above came back without its seed: undo all.
    IF array_position(vals, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a quota counter vanished while it was being seeded'
            USING ERRCODE = 'TGQ01';
    END IF;
    FOR i IN 1 .. cardinality(p_keys) LOOP
        IF vals[i] + p_amounts[i] > p_limits[i] THEN
            RETURN vals;
        END IF;
    END LOOP;
    UPDATE ai_counters AS c SET value = c.value + w.a
    FROM unnest(p_keys, p_amounts) AS w(k, a) WHERE c.key = w.k;
    RETURN vals;
END
$fn$;
