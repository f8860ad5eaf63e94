-- Delivery with retries (NOT-3): a message is `pending` until a channel
-- accepts it (`delivered`), it runs out of attempts or is refused for good
-- (`dead`, for the operators), or the holder's preferences drop it
-- (`suppressed`). A worker holds a message by its lease while delivering.
ALTER TABLE messages ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN content_sha256 TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, next_attempt_at);

-- Every attempt: when, which transport, and what it answered.
CREATE TABLE IF NOT EXISTS message_attempts (
    message_id  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    transport   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    PRIMARY KEY (message_id, attempt)
);

-- The holder's choices (UA-1): an e-mail for every use of the credentials.
CREATE TABLE IF NOT EXISTS preferences (
    subject_id            TEXT PRIMARY KEY,
    credential_use_email  BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
