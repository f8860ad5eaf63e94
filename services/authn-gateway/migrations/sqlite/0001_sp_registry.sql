-- Operators' changes to the SP registry (`idpctl sp add|remove`), applied
-- over the metadata sources at every reload: metadata given by an operator,
-- or a removal (metadata NULL, removed 1).
CREATE TABLE IF NOT EXISTS sp_overrides (
    entity_id   TEXT PRIMARY KEY,
    metadata    TEXT,
    removed     BIGINT NOT NULL,
    operator    TEXT NOT NULL,
    changed_at  BIGINT NOT NULL
);
-- Bumped by every change and by `idpctl sp refresh`: replicas poll it and
-- reload when it moves.
CREATE TABLE IF NOT EXISTS sp_registry_generation (
    id          BIGINT PRIMARY KEY,
    generation  BIGINT NOT NULL
);
INSERT INTO sp_registry_generation (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
