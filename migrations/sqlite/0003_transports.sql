-- What transports need to deliver tasks once and route replies back.

ALTER TABLE messages ADD COLUMN delivered_at INTEGER;
CREATE INDEX messages_undelivered ON messages(target, status, delivered_at);

-- Messages a transport posted for a task (e.g. Telegram `chat:message_id`): how replies find it.
CREATE TABLE transport_refs (
    target          TEXT NOT NULL,
    external_ref    TEXT NOT NULL,
    message_id      TEXT NOT NULL REFERENCES messages(id),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (target, external_ref)
);

-- Small durable values a transport keeps, such as the Telegram update offset.
CREATE TABLE transport_state (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Incoming events already handled, so a redelivered update changes nothing twice.
CREATE TABLE transport_seen (
    target          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    seen_at         INTEGER NOT NULL,
    PRIMARY KEY (target, event_id)
);
