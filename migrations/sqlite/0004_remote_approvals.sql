-- An authorization request the owner is asked to approve elsewhere (in Telegram): the
-- one-time token the buttons carry (hashed), and the decision once made.
CREATE TABLE remote_approvals (
    request_id      TEXT PRIMARY KEY REFERENCES authorization_requests(id) ON DELETE CASCADE,
    token_hash      TEXT NOT NULL UNIQUE,
    decision        TEXT,                    -- 'approved' | 'denied'
    expires_at      INTEGER NOT NULL
);
