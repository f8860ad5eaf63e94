-- Every state change of an identity (LC-1): from, to, who (holder,
-- operator, administrator, scheduler), why, and the justifying document.
CREATE TABLE identity_transitions (
    id                TEXT PRIMARY KEY,
    identity_id       TEXT NOT NULL REFERENCES identities (id),
    from_status       TEXT NOT NULL,
    to_status         TEXT NOT NULL,
    actor_kind        TEXT NOT NULL,
    actor_id          TEXT NOT NULL,
    reason            TEXT NOT NULL,
    justification_ref TEXT NOT NULL,
    at                BIGINT NOT NULL
);
CREATE INDEX identity_transitions_identity ON identity_transitions (identity_id, at);
