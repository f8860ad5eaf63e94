-- The provider's app bound to an identity (OTP-3, OTP-4): its public key
-- (ECDSA P-256, SubjectPublicKeyInfo DER) verifies every approval. One
-- active device per identity; dropped ones stay for the record.
CREATE TABLE IF NOT EXISTS devices (
    id          TEXT PRIMARY KEY,
    spid_code   TEXT NOT NULL,
    public_key  BLOB NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_identity ON devices (spid_code, status);
