-- Identification (IDN-1, IDN-2) and verification (VER-1).

-- Appointments at a counter or by video, confirmed by an operator.
CREATE TABLE appointments (
    request_id   TEXT PRIMARY KEY REFERENCES identity_requests (id),
    scheduled_at BIGINT NOT NULL,
    operator_id  TEXT,
    confirmed_at BIGINT,
    created_at   BIGINT NOT NULL
);

-- The symbolic bank transfer of the video + transfer method (IDN-1 f).
CREATE TABLE bank_transfers (
    request_id   TEXT PRIMARY KEY REFERENCES identity_requests (id),
    reference    TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    recorded_by  TEXT NOT NULL
);

-- Each authoritative-source answer; the full call is encrypted evidence.
CREATE TABLE source_checks (
    request_id  TEXT NOT NULL REFERENCES identity_requests (id),
    source      TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    reference   TEXT NOT NULL,
    evidence_id TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX source_checks_request ON source_checks (request_id);

CREATE INDEX identity_requests_method ON identity_requests (method, state);
