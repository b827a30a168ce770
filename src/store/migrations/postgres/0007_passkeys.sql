-- Passkeys (WebAuthn): one row per credential, the credential id (base64url) as key so
-- one credential can never belong to two accounts. `passkey` is webauthn-rs's own
-- serialisation (public key, counter, backup flags), rewritten when a sign-in changes it.
CREATE TABLE passkeys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    passkey      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys(user_id);

-- A WebAuthn ceremony in progress, keyed by its challenge (base64url): the browser's
-- signed client data names it, so the answer finds its state without another handle.
-- Taken once (DELETE … RETURNING), within minutes.
CREATE TABLE webauthn_ceremonies (
    challenge  TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies(expires_at);
CREATE INDEX webauthn_ceremonies_by_user ON webauthn_ceremonies(user_id, kind);
