-- Authenticator-app tokens (OTP-2, OTP-7). No seed is stored: only the
-- token's derivation key, sealed under the data key (AES-256-GCM, bound
-- to the token id); the seed is derived from it and the master key when a
-- code is checked. last_used_step makes every accepted step single use
-- (OTP-8); -1: none yet.
CREATE TABLE IF NOT EXISTS totp_tokens (
    id              TEXT PRIMARY KEY,
    spid_code       TEXT NOT NULL,
    sealed_key      BLOB NOT NULL,
    status          TEXT NOT NULL,
    last_used_step  BIGINT NOT NULL DEFAULT -1,
    created_at      BIGINT NOT NULL,
    confirmed_at    BIGINT
);
CREATE INDEX IF NOT EXISTS totp_tokens_identity ON totp_tokens (spid_code, status);
