-- Second factors. A TOTP secret is stored sealed (AES-256-GCM under the key ring's
-- sealing key, bound to the user id); `last_step` is the last time step accepted, so a
-- code works once (the UPDATE that advances it is the replay check, across nodes).
CREATE TABLE totp_factors (
    user_id      TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT
);

-- Recovery codes: ten per account, single use, stored as their SHA-256 (each is 60
-- random bits shown once; a guess is bounded by the sign-in throttling).
CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in waiting for its second factor: the first factor passed, the `mfa_token`
-- (stored as its SHA-256) completes it once, within minutes and a few attempts.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    amr        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_by_expiry ON mfa_challenges(expires_at);
