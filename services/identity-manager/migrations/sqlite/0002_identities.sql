-- The rest of the registration data set (REG-1/2), document acceptances
-- (REG-8), contact verification codes (REG-5), identities with their
-- credential state (EMI-1, LC-5).

-- Birth country/province, domicile, health card, legal seat, company
-- codice fiscale: validated JSON, read as a whole.
ALTER TABLE holders ADD COLUMN details TEXT;

CREATE TABLE identity_documents (
    id         TEXT PRIMARY KEY,
    holder_id  TEXT NOT NULL REFERENCES holders (id),
    kind       TEXT NOT NULL,
    number     TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    issued_on  TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    added_at   BIGINT NOT NULL
);
CREATE INDEX identity_documents_holder ON identity_documents (holder_id);

CREATE TABLE acceptances (
    request_id  TEXT NOT NULL REFERENCES identity_requests (id),
    document    TEXT NOT NULL,
    version     TEXT NOT NULL,
    accepted_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, document)
);

-- One pending code per contact; only a keyed hash of the code is kept.
CREATE TABLE contact_codes (
    holder_id  TEXT NOT NULL REFERENCES holders (id),
    kind       TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   INTEGER NOT NULL,
    PRIMARY KEY (holder_id, kind)
);

CREATE TABLE identities (
    id                TEXT PRIMARY KEY,
    spid_code         TEXT NOT NULL UNIQUE,
    holder_id         TEXT NOT NULL REFERENCES holders (id),
    request_id        TEXT NOT NULL UNIQUE REFERENCES identity_requests (id),
    identity_type     TEXT NOT NULL,
    -- The e-mail address, lower-cased (REG-1: the e-mail is the username).
    username          TEXT NOT NULL UNIQUE,
    status            TEXT NOT NULL,
    max_level         INTEGER NOT NULL,
    failed_logins     INTEGER NOT NULL,
    created_at        BIGINT NOT NULL,
    status_changed_at BIGINT NOT NULL
);
CREATE INDEX identities_holder ON identities (holder_id);
ALTER TABLE identity_requests ADD COLUMN applicant_token_hash TEXT;
