-- One active app and one active authenticator per identity, also under
-- concurrent binds and confirmations.
CREATE UNIQUE INDEX IF NOT EXISTS devices_one_active ON devices (spid_code) WHERE status = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS totp_tokens_one_active ON totp_tokens (spid_code) WHERE status = 'active';
