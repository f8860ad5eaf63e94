-- Codes sent per contact (and per video challenge) since the last success:
-- each new code gives new attempts, so the sends are capped too.
ALTER TABLE contact_codes ADD COLUMN sends INTEGER NOT NULL DEFAULT 1;
