-- The whole schema for PostgreSQL: the same tables, columns, indexes, constraints and triggers as
-- the SQLite migrations 0001 to 0009 together (see migrations/sqlite/ for what each part is for),
-- so that one query text (with $1 placeholders) serves both engines.
-- Translation: every integer is BIGINT (the Rust side decodes i64; `messages.urgent` stays a 0/1
-- BIGINT, not a BOOLEAN), BLOB is BYTEA, AUTOINCREMENT is an identity column, and the SQLite
-- triggers are PL/pgSQL trigger functions. Times are Unix seconds.
-- PostgreSQL only, for several replicas sharing one database: `updates` and `revocation_log` get
-- their sequence numbers in commit order (see "Sequence numbers in commit order" below), and
-- inserts and changes NOTIFY the other replicas (see "Wake-ups across replicas" at the end).

-- From 0001: the authorization server's state.

CREATE TABLE clients (
    id                  TEXT PRIMARY KEY,
    secret_hash         TEXT,
    name                TEXT NOT NULL,
    redirect_uris       TEXT NOT NULL,       -- JSON array of exact strings
    auth_method         TEXT NOT NULL,       -- none | client_secret_post | client_secret_basic
    metadata            TEXT NOT NULL,       -- JSON object: the registered metadata we echo
    created_at          BIGINT NOT NULL,
    authorized_at       BIGINT,              -- first owner approval; NULL clients are swept
    last_used_at        BIGINT,
    first_authorize_at  BIGINT,              -- 0005
    -- Stands in for SQLite's implicit rowid (insertion order): evicting the oldest unapproved
    -- clients breaks ties between clients registered in the same second by it.
    rowid               BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX clients_unapproved ON clients (created_at) WHERE authorized_at IS NULL;

CREATE TABLE authorization_requests (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    state           TEXT,
    code_challenge  TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    csrf_hash       TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    client_id       TEXT REFERENCES clients(id) ON DELETE CASCADE,
    name            TEXT,
    subject         TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX grants_client ON grants(client_id);
CREATE UNIQUE INDEX grants_bearer_name ON grants(name) WHERE kind = 'bearer' AND revoked_at IS NULL;

CREATE TABLE authorization_codes (
    hash            TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

CREATE TABLE refresh_tokens (
    hash            TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    rotated_at      BIGINT,
    successor_hash  TEXT,
    grace_until     BIGINT,
    grace_sealed    BYTEA,
    rotated_from_ip TEXT                     -- 0006
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);
CREATE INDEX refresh_tokens_successor ON refresh_tokens(successor_hash);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    alg                 TEXT NOT NULL,
    private_pkcs8       BYTEA NOT NULL,
    created_at          BIGINT NOT NULL,
    retired_at          BIGINT,
    tokens_valid_until  BIGINT NOT NULL DEFAULT 0,
    -- Stands in for SQLite's implicit rowid (insertion order), so that one query text
    -- (`ORDER BY created_at DESC, rowid DESC`) orders both engines alike.
    rowid               BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE revoked_tokens (
    jti             TEXT PRIMARY KEY,
    expires_at      BIGINT NOT NULL
);

CREATE TABLE owner (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    password_hash   TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE owner_sessions (
    hash            TEXT PRIMARY KEY,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- From 0002 and 0003: the task queue and what transports keep.

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    target          TEXT NOT NULL,
    content         TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    urgent          BIGINT NOT NULL DEFAULT 0,   -- 0 or 1
    status          TEXT NOT NULL,
    sender          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    acknowledged_at BIGINT,
    started_at      BIGINT,
    finished_at     BIGINT,
    claimed_by      TEXT,
    transport_ref   TEXT,
    delivered_at    BIGINT,                      -- 0003
    -- Stands in for SQLite's implicit rowid (insertion order), so that one query text
    -- (`ORDER BY urgent DESC, created_at, rowid`) breaks ties alike in both engines.
    rowid           BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX messages_open_dedup ON messages(target, content_hash)
    WHERE status IN ('pending', 'acknowledged', 'in_progress');
CREATE INDEX messages_claim ON messages(status, target, urgent DESC, created_at);
CREATE INDEX messages_undelivered ON messages(target, status, delivered_at);

CREATE TABLE updates (
    seq             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    message_id      TEXT REFERENCES messages(id),
    target          TEXT NOT NULL,
    content         TEXT NOT NULL,
    status          TEXT,
    source          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX updates_message ON updates(message_id, seq);
CREATE INDEX updates_created ON updates(created_at);

CREATE TABLE client_cursors (
    client_id       TEXT PRIMARY KEY,
    seq             BIGINT NOT NULL
);

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    targets         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE UNIQUE INDEX agents_live_name ON agents(name) WHERE revoked_at IS NULL;

CREATE TABLE transport_refs (
    target          TEXT NOT NULL,
    external_ref    TEXT NOT NULL,
    message_id      TEXT NOT NULL REFERENCES messages(id),
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (target, external_ref)
);

CREATE TABLE transport_state (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE transport_seen (
    target          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    seen_at         BIGINT NOT NULL,
    PRIMARY KEY (target, event_id)
);

-- From 0004 and 0005: approvals in Telegram, and the owner's browsers.

CREATE TABLE remote_approvals (
    request_id      TEXT PRIMARY KEY REFERENCES authorization_requests(id) ON DELETE CASCADE,
    token_hash      TEXT NOT NULL UNIQUE,
    decision        TEXT,                    -- 'approved' | 'denied'
    expires_at      BIGINT NOT NULL,
    code_hash       TEXT                     -- 0005
);

CREATE TABLE owner_devices (
    hash            TEXT PRIMARY KEY,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- From 0007: pinned upstream tool definitions.

CREATE TABLE upstream_tools (
    upstream        TEXT NOT NULL,
    name            TEXT NOT NULL,
    definition      TEXT NOT NULL,
    pinned_at       BIGINT NOT NULL,
    drift           TEXT,
    PRIMARY KEY (upstream, name)
);

-- From 0008: every event that kills access tokens, written by triggers.

CREATE TABLE revocation_log (
    seq             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    grant_id        TEXT,
    jti             TEXT,
    logged_at       BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now())::BIGINT)
);

CREATE FUNCTION revocation_log_grant_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO revocation_log (grant_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER revocation_log_grant_revoked AFTER UPDATE OF revoked_at ON grants
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION revocation_log_grant_revoked();

CREATE FUNCTION revocation_log_grant_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO revocation_log (grant_id) VALUES (OLD.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER revocation_log_grant_deleted AFTER DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION revocation_log_grant_deleted();

CREATE FUNCTION revocation_log_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO revocation_log (jti) VALUES (NEW.jti);
    RETURN NULL;
END
$$;
CREATE TRIGGER revocation_log_token_revoked AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION revocation_log_token_revoked();

-- Sequence numbers in commit order (PostgreSQL only).
-- Readers page through `updates` and `revocation_log` by `seq > cursor`. With several writers, a
-- transaction could take seq 10, another seq 11 and commit first: a reader that saw 11 would skip
-- 10 forever. So every INSERT into either table first takes a transaction-level advisory lock,
-- one per table, held until commit or rollback: the next writer waits, and takes its number only
-- after the previous one is visible. (SQLite has one writer at a time, so it needs nothing.)
-- The cost: writers of each table commit one at a time. A rolled-back insert leaves a gap, which
-- is harmless (readers only need that no lower number appears later).
--
-- Variant chosen: BEFORE INSERT ... FOR EACH STATEMENT. The PostgreSQL documentation says
-- statement-level BEFORE triggers fire before the statement starts to do anything, and the
-- executor (ExecModifyTable in nodeModifyTable.c) fires them on its first call, before it pulls
-- the first row from its subplan, which is where column defaults, and so the identity's nextval,
-- are evaluated. A row-level trigger would be too late: the row it gets already has its seq.
-- This also covers the inserts into revocation_log made by the triggers above (each is a
-- statement of its own).
--
-- The keys: advisory locks share one space per database, so they are fixed numbers unlikely to
-- clash with anything else: the ASCII of 'nexus' (0x6E65787573) followed by 16 bits, 0x0001 for
-- updates and 0x0002 for revocation_log. Never change them: replicas of different versions must
-- take the same lock.

CREATE FUNCTION updates_seq_lock() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    updates_lock_key CONSTANT bigint := 31073815479123969;  -- 0x6E657875730001
BEGIN
    PERFORM pg_advisory_xact_lock(updates_lock_key);
    RETURN NULL;
END
$$;
CREATE TRIGGER updates_seq_lock BEFORE INSERT ON updates
    FOR EACH STATEMENT EXECUTE FUNCTION updates_seq_lock();

CREATE FUNCTION revocation_log_seq_lock() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    revocation_log_lock_key CONSTANT bigint := 31073815479123970;  -- 0x6E657875730002
BEGIN
    PERFORM pg_advisory_xact_lock(revocation_log_lock_key);
    RETURN NULL;
END
$$;
CREATE TRIGGER revocation_log_seq_lock BEFORE INSERT ON revocation_log
    FOR EACH STATEMENT EXECUTE FUNCTION revocation_log_seq_lock();

-- Wake-ups across replicas (PostgreSQL only).
-- Each replica LISTENs, and wakes what waits in memory as it does for its own writes:
--   nexus_queue 'messages'  a message was queued or changed (agents long-polling for pending work:
--                           a message going back to pending must wake them; status caches)
--   nexus_queue 'updates'   an update was recorded (clients waiting in pull_updates)
--   nexus_revocations ''    the revocation log grew (drop cached tokens now, not at the next poll)
--   nexus_keys ''           a signing key was added or retired (reload them)
-- Notifications are delivered at commit, never for a rolled-back transaction, and identical ones
-- in one transaction are folded into one. On messages and updates, a statement that changed no
-- row (e.g. INSERT ... ON CONFLICT DO NOTHING on a duplicate, an UPDATE matching nothing) sends
-- nothing: otherwise a woken agent's empty claim attempt would wake all the others, and so on.

CREATE FUNCTION notify_queue_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('nexus_queue', 'messages');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_notify_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_queue_messages();
CREATE TRIGGER messages_notify_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_queue_messages();

CREATE FUNCTION notify_queue_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('nexus_queue', 'updates');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER updates_notify AFTER INSERT ON updates
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_queue_updates();

CREATE FUNCTION notify_revocations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_revocations', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER revocation_log_notify AFTER INSERT ON revocation_log
    FOR EACH STATEMENT EXECUTE FUNCTION notify_revocations();

CREATE FUNCTION notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_keys', '');
    RETURN NULL;
END
$$;
-- Only a new key or a retirement changes what verifies: not the validity extended at each issue.
CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE OF retired_at ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_keys();

-- From sqlite/0009: named leases, each held by one process until it expires: how one replica
-- among several becomes the Telegram poller.

CREATE TABLE leases (
    name            TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,           -- a random id of the process holding it
    expires_at      BIGINT NOT NULL          -- Unix seconds; after this anyone may take it
);
