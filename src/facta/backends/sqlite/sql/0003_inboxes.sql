-- facta SQLite schema, migration 3: what inboxes (facta.publishing.Inbox) keep beside the read
-- models they feed. An inbox is named like a projection (and locked like one).

-- How far each inbox got in each stream of the store that sent the events: the version it
-- applied last and that event's id. A message at or below it is a duplicate.
CREATE TABLE facta_inbox_streams (
    inbox          TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,                   -- 16 bytes
    updated_at     REAL    NOT NULL,                   -- Unix seconds
    marker         INTEGER NOT NULL DEFAULT 0,         -- the position of the last marker applied
    PRIMARY KEY (inbox, stream_id)
) WITHOUT ROWID;
-- The messages an inbox holds back, as received: parked ones (error NULL) wait for their
-- stream's earlier versions, dead letters (an error) wait for a person.
CREATE TABLE facta_inbox_held (
    id             INTEGER PRIMARY KEY,                -- the order they were held in
    inbox          TEXT    NOT NULL,
    stream_id      TEXT,                               -- NULL when the headers do not say
    version        INTEGER,
    event_id       TEXT,
    subject        TEXT    NOT NULL,
    headers        TEXT    NOT NULL,                   -- JSON object of the message's headers
    data           BLOB    NOT NULL,
    error          TEXT,                               -- NULL: parked, else why it is dead
    held_at        REAL    NOT NULL                    -- Unix seconds
);
CREATE INDEX facta_inbox_held_inbox ON facta_inbox_held (inbox, id);
-- One parked message per stream version, found by stream when its turn comes.
CREATE UNIQUE INDEX facta_inbox_held_parked ON facta_inbox_held (inbox, stream_id, version)
    WHERE error IS NULL;
