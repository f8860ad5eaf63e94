-- Registration: holders, identity requests and their history, contacts,
-- password history, evidence, operators. Times are microseconds since the
-- epoch (BIGINT); dates are ISO text.

CREATE TABLE operators (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('counter', 'video_desk', 'verifier', 'administrator')),
    created_at   BIGINT NOT NULL,
    disabled_at  BIGINT
);

CREATE TABLE holders (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('natural', 'legal')),
    codice_fiscale TEXT,
    vat_number     TEXT,
    surname        TEXT,
    given_name     TEXT,
    company_name   TEXT,
    birth_date     TEXT,
    birthplace     TEXT,
    sex            TEXT CHECK (sex IN ('M', 'F')),
    created_at     BIGINT NOT NULL
);

CREATE TABLE identity_requests (
    id                     TEXT PRIMARY KEY,
    holder_id              TEXT NOT NULL REFERENCES holders (id),
    identity_type          TEXT NOT NULL CHECK (identity_type IN ('private', 'professional_natural', 'professional_legal')),
    channel                TEXT NOT NULL CHECK (channel IN ('online', 'counter')),
    method                 TEXT,
    state                  TEXT NOT NULL,
    state_since            BIGINT NOT NULL,
    documents_requested_at BIGINT,
    created_at             BIGINT NOT NULL,
    version                BIGINT NOT NULL
);
CREATE INDEX identity_requests_open ON identity_requests (state, state_since);

-- Every transition, with its actor and reason (the request's history).
CREATE TABLE request_transitions (
    request_id TEXT NOT NULL REFERENCES identity_requests (id),
    version    BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    reason     TEXT,
    at         BIGINT NOT NULL,
    PRIMARY KEY (request_id, version)
);

CREATE TABLE contacts (
    holder_id   TEXT NOT NULL REFERENCES holders (id),
    kind        TEXT NOT NULL CHECK (kind IN ('email', 'mobile', 'pec')),
    value       TEXT NOT NULL,
    verified_at BIGINT,
    PRIMARY KEY (holder_id, kind)
);
-- REG-4: one e-mail address, one holder.
CREATE UNIQUE INDEX contacts_unique_email ON contacts (lower(value)) WHERE kind = 'email';

-- Password history (REG-6): newest has the highest seq.
CREATE TABLE credentials (
    holder_id     TEXT NOT NULL REFERENCES holders (id),
    seq           BIGINT NOT NULL,
    password_hash TEXT NOT NULL,
    skeleton_hash TEXT NOT NULL,
    set_at        BIGINT NOT NULL,
    PRIMARY KEY (holder_id, seq)
);

-- Evidence, envelope-encrypted (REG-10, EMI-3).
CREATE TABLE evidence (
    id             TEXT PRIMARY KEY,
    request_id     TEXT NOT NULL REFERENCES identity_requests (id),
    kind           TEXT NOT NULL,
    kek            TEXT NOT NULL,
    wrapped_key    BYTEA NOT NULL,
    ciphertext     BYTEA NOT NULL,
    content_sha256 TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
