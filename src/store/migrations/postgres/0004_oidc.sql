-- OpenID Connect provider and federation. Timestamps are Unix seconds.

-- OAuth 2.0 clients. Only the SHA-256 of a confidential client's secret is stored (the
-- secret is 256 random bits); public clients have none. `id_token_alg` is how its ID tokens
-- are signed (RS256 or EdDSA). Lists are space-separated
-- (URIs and scopes contain no spaces). A deleted client keeps its row, so its id is
-- never reused and the revocation poll can see when it went. `tokens_valid_after`: its
-- scopes were narrowed then, and tokens issued up to that second are void.
CREATE TABLE oauth_clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    secret_hash               TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    skip_consent              BOOLEAN NOT NULL DEFAULT FALSE,
    id_token_alg              TEXT NOT NULL DEFAULT 'RS256',
    tokens_valid_after        BIGINT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    deleted_at                BIGINT
);
CREATE INDEX oauth_clients_by_deleted_at ON oauth_clients(deleted_at);

-- Authorization codes, by SHA-256. Single use: `used_at` is set by the one exchange that
-- wins; `session_id` is the session that exchange created, revoked if the code comes back.
CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients(id),
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    browser_session TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    auth_time       BIGINT NOT NULL,
    amr             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    session_id      TEXT
);
CREATE INDEX oauth_codes_by_expiry ON oauth_codes(expires_at);

-- What a user allowed a client: the scopes, remembered until revoked.
CREATE TABLE oauth_consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oauth_clients(id),
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- A client's sessions carry the scopes the user granted (NULL: Tollgate's own sign-in,
-- which gets whatever the roles grant) and the sign-in session they derive from, which
-- takes them along when it ends (unless offline_access was granted).
ALTER TABLE sessions ADD COLUMN scope TEXT;
ALTER TABLE sessions ADD COLUMN parent_id TEXT;
CREATE INDEX sessions_by_parent ON sessions(parent_id);
CREATE INDEX sessions_by_client ON sessions(client_id);

-- Single access tokens revoked on their own (RFC 7009 on a client-credentials token):
-- kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
    id         TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_time ON revoked_tokens(revoked_at);

-- Accounts at external identity providers linked to local accounts. `mapped_roles` are
-- the roles the provider's claims granted at the last sign-in (and may take away again).
CREATE TABLE federated_identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email         TEXT,
    mapped_roles  TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX federated_identities_by_user ON federated_identities(user_id);
