-- Agent-ready OAuth. Timestamps are Unix seconds.

-- RFC 8707: the protected resource a client's tokens are bound to (their `aud`), asked
-- for in the authorization request, carried by its code to the session, and kept by
-- every refresh. NULL: tokens for Tollgate itself (first-party sessions, as before).
ALTER TABLE sessions ADD COLUMN resource TEXT;
ALTER TABLE oauth_codes ADD COLUMN resource TEXT;
-- A consent covers the resources it was given for (space-separated): allowing a client
-- at one MCP server does not allow it silently at another.
ALTER TABLE oauth_consents ADD COLUMN resources TEXT NOT NULL DEFAULT '';

-- RFC 7591: clients that registered themselves. `last_used_at` is the last time one
-- obtained tokens; registered clients unused for `[oauth] registered_client_ttl` are
-- deleted (soft, like every client, so an id is never reused).
ALTER TABLE oauth_clients ADD COLUMN registered BOOLEAN NOT NULL DEFAULT FALSE;
-- A client described by a client ID metadata document: the document's URL. Such clients
-- are refreshed from it, never expired, and stay out once an operator deletes them.
ALTER TABLE oauth_clients ADD COLUMN metadata_url TEXT;
ALTER TABLE oauth_clients ADD COLUMN last_used_at INTEGER;
CREATE INDEX oauth_clients_by_registered ON oauth_clients(registered, deleted_at);

-- RFC 8628: device authorizations. The device code is stored as its SHA-256, the user
-- code (8 letters, normalised) too. `status`: pending, approved, denied, used. The device
-- polls no faster than `interval_secs` (raised by 5 s at each `slow_down`); approval
-- records who approved from which sign-in session, and redemption the session created.
CREATE TABLE device_authorizations (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL REFERENCES oauth_clients(id),
    scope            TEXT NOT NULL,
    resource         TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_secs    INTEGER NOT NULL,
    last_polled_at   INTEGER,
    status           TEXT NOT NULL DEFAULT 'pending',
    user_id          TEXT REFERENCES users(id) ON DELETE CASCADE,
    browser_session  TEXT,
    auth_time        INTEGER,
    amr              TEXT,
    session_id       TEXT
);
CREATE INDEX device_authorizations_by_expiry ON device_authorizations(expires_at);
