-- facta SQLite schema, version 1 (statements split on semicolons: keep them out of comments): the events table (the global log) and snapshots.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,  -- global order, never reused
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,                   -- 1, 2, 3 ... per stream, no gaps
    event_id       BLOB    NOT NULL UNIQUE,            -- 16-byte UUID
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    encoding       INTEGER NOT NULL,                   -- codec stages: 0 plain JSON, 1 zlib
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at    REAL    NOT NULL,                   -- Unix seconds
    UNIQUE (stream_id, version)
);
CREATE INDEX events_type ON events (type, position);
CREATE TABLE snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    aggregate_type TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    encoding       INTEGER NOT NULL,
    checksum       INTEGER NOT NULL,
    state          BLOB    NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
