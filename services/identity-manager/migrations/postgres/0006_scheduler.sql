-- The lifecycle scheduler (LC-2, LC-3). last_used_at: the last successful
-- password check (inactivity revocation after 24 months). holder_request:
-- a suspension asked for by the holder, restored automatically after 30
-- days. lifecycle_notices: each warning sent once per deadline.
ALTER TABLE identities ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
-- Existing identities count as used now: none is revoked without its warnings.
UPDATE identities SET last_used_at = CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT) WHERE last_used_at = 0;
CREATE INDEX identities_last_used ON identities (last_used_at);
ALTER TABLE identity_transitions ADD COLUMN holder_request BIGINT NOT NULL DEFAULT 0;
CREATE TABLE lifecycle_notices (
    identity_id TEXT NOT NULL,
    notice      TEXT NOT NULL,
    sent_at     BIGINT NOT NULL,
    PRIMARY KEY (identity_id, notice)
);
