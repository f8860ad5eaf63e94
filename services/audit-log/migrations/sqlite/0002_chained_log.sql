-- The hash-chained, encrypted, time-partitioned audit log. Replaces the
-- unchained prototype table of 0001 (never deployed).
DROP TABLE IF EXISTS audit_records;

-- The single row every writer locks: the end of the chain.
CREATE TABLE audit_chain_head (
    id               INT PRIMARY KEY CHECK (id = 1),
    last_seq         BIGINT NOT NULL,
    last_hash        BLOB NOT NULL,
    last_recorded_at BIGINT NOT NULL,
    -- Records are never recorded before this instant (the end of the last
    -- sealed day), whatever a replica's clock says.
    sealed_until     BIGINT NOT NULL
);
INSERT INTO audit_chain_head VALUES (1, 0, zeroblob(32), 0, 0);

-- month = year * 12 + (month - 1) of recorded_at (UTC); Postgres keeps one
-- partition per month, SQLite one table.
CREATE TABLE audit_records (
    seq         BIGINT NOT NULL,
    month       INT NOT NULL,
    recorded_at BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    source      TEXT NOT NULL,
    key_id      INT NOT NULL,
    sealed      BLOB NOT NULL,
    chain       BLOB NOT NULL,
    PRIMARY KEY (seq, month)
);

-- Blind index: HMAC of (kind, value) -> record.
CREATE TABLE audit_keys (
    key_hash BLOB NOT NULL,
    seq      BIGINT NOT NULL,
    month    INT NOT NULL
);
CREATE INDEX audit_keys_lookup ON audit_keys (key_hash, seq);

-- Idempotency by event id.
CREATE TABLE audit_event_ids (
    event_id TEXT PRIMARY KEY,
    seq      BIGINT NOT NULL
);

CREATE TABLE audit_seals (
    day        TEXT PRIMARY KEY,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    records    BIGINT NOT NULL,
    chain      BLOB NOT NULL,
    previous   BLOB NOT NULL,
    digest     BLOB NOT NULL,
    signature  BLOB NOT NULL,
    tsa        TEXT NOT NULL,
    token      BLOB NOT NULL,
    sealed_at  BIGINT NOT NULL,
    purged_at  BIGINT
);

-- Registration evidence references (EMI-3), kept 20 years after the
-- identity ends; retain_until is set when it is revoked or expires.
CREATE TABLE audit_evidence (
    evidence_id  TEXT PRIMARY KEY,
    spid_key     BLOB NOT NULL,
    seq          BIGINT NOT NULL,
    key_id       INT NOT NULL,
    sealed       BLOB NOT NULL,
    recorded_at  BIGINT NOT NULL,
    retain_until BIGINT
);
CREATE INDEX audit_evidence_holder ON audit_evidence (spid_key);
CREATE INDEX audit_evidence_due ON audit_evidence (retain_until);
