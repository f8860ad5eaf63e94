CREATE TABLE IF NOT EXISTS audit_records (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    source       TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    recorded_at  BIGINT NOT NULL,
    envelope     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_aggregate ON audit_records (aggregate_id, seq);
CREATE INDEX IF NOT EXISTS audit_records_type ON audit_records (event_type, seq);
CREATE INDEX IF NOT EXISTS audit_records_occurred ON audit_records (occurred_at);
