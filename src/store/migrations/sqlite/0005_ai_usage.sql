-- The AI usage ledger: one row per proxied call, written when the call is settled.
-- `principal` is the user id (or a service's client id) the call was metered to; day
-- and month quota counters start from these rows. `day` is the UTC date (YYYY-MM-DD) of
-- admission, so reports group by day on both backends alike. Costs are pico-dollars.
CREATE TABLE ai_usage (
    id            TEXT PRIMARY KEY,
    principal     TEXT NOT NULL,
    api_key_id    TEXT,
    client_id     TEXT,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_pico     INTEGER NOT NULL,
    latency_ms    INTEGER NOT NULL,
    status        INTEGER NOT NULL,
    outcome       TEXT NOT NULL,
    streamed      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    day           TEXT NOT NULL
);
CREATE INDEX ai_usage_by_principal ON ai_usage(principal, day);
CREATE INDEX ai_usage_by_day ON ai_usage(day);
