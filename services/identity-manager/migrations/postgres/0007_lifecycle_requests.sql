-- Issue 7's second part.
-- cause: why a transition happened, from a closed list (LC-2, LC-3, LC-4,
-- LC-5, LC-8, MIN-7); channel: how a holder's request arrived.
ALTER TABLE identity_transitions ADD COLUMN cause TEXT NOT NULL DEFAULT 'other';
ALTER TABLE identity_transitions ADD COLUMN channel TEXT NOT NULL DEFAULT '';

-- A holder's own lifecycle request (LC-2): suspension, revocation,
-- reactivation or unlock. Requests not sent by PEC or digitally signed are
-- confirmed with a code sent to a verified secondary attribute (contact;
-- the code is kept, hashed, in contact_codes under 'lifecycle:<id>').
-- receipt_id is the evidence of receipt given back to the holder.
CREATE TABLE holder_requests (
    id           TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id),
    action       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    contact      TEXT NOT NULL,
    sent_to      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    state        TEXT NOT NULL,
    receipt_id   TEXT,
    confirmed_at BIGINT
);
CREATE INDEX holder_requests_identity ON holder_requests (identity_id, created_at);

-- Minors (MIN-1, MIN-7): the parent whose request made the minor's
-- identity, and the authorisations the parent granted. Suspending or
-- revoking the parent suspends the minor and ends every authorisation.
CREATE TABLE guardianships (
    minor_identity_id  TEXT NOT NULL REFERENCES identities (id),
    parent_identity_id TEXT NOT NULL REFERENCES identities (id),
    created_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    PRIMARY KEY (minor_identity_id, parent_identity_id)
);
CREATE INDEX guardianships_parent ON guardianships (parent_identity_id);
CREATE TABLE minor_authorisations (
    id                TEXT PRIMARY KEY,
    minor_identity_id TEXT NOT NULL REFERENCES identities (id),
    sp_entity_id      TEXT NOT NULL,
    granted_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    ended_at          BIGINT,
    ended_reason      TEXT
);
CREATE INDEX minor_authorisations_minor ON minor_authorisations (minor_identity_id);

-- One replica at a time runs the scheduler's jobs; a lease that is not
-- renewed (a crashed replica) passes to another after it expires.
CREATE TABLE scheduler_leases (
    job    TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);

-- Document dates in their one form (YYYY-MM-DD), so they compare as
-- strings: registration once stored them as typed ("2030-1-5").
UPDATE identity_documents SET issued_on = to_char(to_date(issued_on, 'YYYY-MM-DD'), 'YYYY-MM-DD')
 WHERE length(issued_on) < 10;
UPDATE identity_documents SET expires_on = to_char(to_date(expires_on, 'YYYY-MM-DD'), 'YYYY-MM-DD')
 WHERE length(expires_on) < 10;
