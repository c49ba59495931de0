-- Named leases, each held by one process until it expires: how one replica among several
-- becomes the Telegram poller. A holder renews its lease before `expires_at`; once that has
-- passed, anyone may take it.
CREATE TABLE leases (
    name            TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,           -- a random id of the process holding it
    expires_at      INTEGER NOT NULL         -- Unix seconds; after this anyone may take it
);
