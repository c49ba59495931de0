-- Every event that kills access tokens, in order: a grant revoked or deleted (with its client),
-- or one access token revoked. Servers cache verified tokens in memory and read this log (every
-- second, and at once after a revocation of their own) to drop what it names. Triggers write
-- it, so no writer (the server, the CLI, another replica) can forget to.
CREATE TABLE revocation_log (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id        TEXT,
    jti             TEXT,
    logged_at       INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);

CREATE TRIGGER revocation_log_grant_revoked AFTER UPDATE OF revoked_at ON grants
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO revocation_log (grant_id) VALUES (NEW.id);
END;

CREATE TRIGGER revocation_log_grant_deleted AFTER DELETE ON grants
BEGIN
    INSERT INTO revocation_log (grant_id) VALUES (OLD.id);
END;

CREATE TRIGGER revocation_log_token_revoked AFTER INSERT ON revoked_tokens
BEGIN
    INSERT INTO revocation_log (jti) VALUES (NEW.jti);
END;
