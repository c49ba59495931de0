-- The authorization server's state: everything a restart must not lose.
-- Times are Unix seconds. Secrets (codes, refresh tokens, client secrets, session tokens)
-- are stored only as hashes.

CREATE TABLE clients (
    id              TEXT PRIMARY KEY,
    secret_hash     TEXT,
    name            TEXT NOT NULL,
    redirect_uris   TEXT NOT NULL,           -- JSON array of exact strings
    auth_method     TEXT NOT NULL,           -- none | client_secret_post | client_secret_basic
    metadata        TEXT NOT NULL,           -- JSON object: the registered metadata we echo
    created_at      INTEGER NOT NULL,
    authorized_at   INTEGER,                 -- first owner approval; NULL clients are swept
    last_used_at    INTEGER
);

-- An /authorize request waiting for the owner: the forms carry only its id.
CREATE TABLE authorization_requests (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    state           TEXT,
    code_challenge  TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    csrf_hash       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);

-- One grant per consent (kind 'oauth') or per bearer-only token (kind 'bearer').
CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    client_id       TEXT REFERENCES clients(id) ON DELETE CASCADE,
    name            TEXT,
    subject         TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX grants_client ON grants(client_id);
CREATE UNIQUE INDEX grants_bearer_name ON grants(name) WHERE kind = 'bearer' AND revoked_at IS NULL;

CREATE TABLE authorization_codes (
    hash            TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);

CREATE TABLE refresh_tokens (
    hash            TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    rotated_at      INTEGER,
    successor_hash  TEXT,
    -- While the grace window is open, the successor pair sealed under a key derived from
    -- this token, so a retried refresh gets the same answer without storing any token.
    grace_until     INTEGER,
    grace_sealed    BLOB
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);
CREATE INDEX refresh_tokens_successor ON refresh_tokens(successor_hash);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    alg                 TEXT NOT NULL,
    private_pkcs8       BLOB NOT NULL,
    created_at          INTEGER NOT NULL,
    retired_at          INTEGER,
    tokens_valid_until  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE revoked_tokens (
    jti             TEXT PRIMARY KEY,
    expires_at      INTEGER NOT NULL
);

CREATE TABLE owner (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    password_hash   TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE owner_sessions (
    hash            TEXT PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
