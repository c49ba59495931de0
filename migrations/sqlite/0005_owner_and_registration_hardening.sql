-- Approval in Telegram is bound to the browser that asked: the owner approves by sending the
-- pairing code that browser shows. Only a hash of (code, request) is kept.
ALTER TABLE remote_approvals ADD COLUMN code_hash TEXT;

-- Browsers the owner has logged in from: they skip the global login budget, so a flood of
-- wrong passphrases from elsewhere cannot lock the owner out. Only hashes are kept.
CREATE TABLE owner_devices (
    hash            TEXT PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);

-- When a client first started an authorization: a client that never does is removed within
-- minutes, not a day. The sweep of unapproved clients reads this index.
ALTER TABLE clients ADD COLUMN first_authorize_at INTEGER;
CREATE INDEX clients_unapproved ON clients (created_at) WHERE authorized_at IS NULL;
