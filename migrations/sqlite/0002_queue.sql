-- The task queue: messages for agents, the updates that follow them, per-client read
-- cursors, and the agents allowed to serve targets.

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    target          TEXT NOT NULL,
    content         TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    urgent          INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    sender          TEXT NOT NULL,           -- the client_id of the token that sent it
    created_at      INTEGER NOT NULL,
    acknowledged_at INTEGER,
    started_at      INTEGER,
    finished_at     INTEGER,
    claimed_by      TEXT,                    -- the agent that claimed it
    transport_ref   TEXT                     -- e.g. where a transport delivered it
);
-- Race-free dedup: two identical open messages for one target cannot both exist, however
-- many sends arrive at once.
CREATE UNIQUE INDEX messages_open_dedup ON messages(target, content_hash)
    WHERE status IN ('pending', 'acknowledged', 'in_progress');
CREATE INDEX messages_claim ON messages(status, target, urgent DESC, created_at);

CREATE TABLE updates (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT REFERENCES messages(id),
    target          TEXT NOT NULL,
    content         TEXT NOT NULL,
    status          TEXT,                    -- set when this update changed the status
    source          TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX updates_message ON updates(message_id, seq);
CREATE INDEX updates_created ON updates(created_at);

CREATE TABLE client_cursors (
    client_id       TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL
);

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    targets         TEXT NOT NULL,           -- JSON array of target names
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE UNIQUE INDEX agents_live_name ON agents(name) WHERE revoked_at IS NULL;
