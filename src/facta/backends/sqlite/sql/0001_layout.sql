-- facta SQLite schema, migration 1 (statements are split on semicolons: keep them out of comments).
-- Every name starts with facta_, so an application can keep its own tables in the same file.
-- On a facta 0.1 file, migration 1 first renames its tables into these (data intact) and then
-- runs the statements below that create what is still missing.
CREATE TABLE facta_migrations (
    version        INTEGER PRIMARY KEY,                -- the NNNN of sql/NNNN_name.sql
    applied_at     REAL    NOT NULL                    -- Unix seconds
);
CREATE TABLE facta_events (
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
CREATE INDEX facta_events_type ON facta_events (type, position);
CREATE TABLE facta_snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    aggregate_type TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    encoding       INTEGER NOT NULL,
    checksum       INTEGER NOT NULL,
    state          BLOB    NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
CREATE TABLE facta_projections (
    name           TEXT    PRIMARY KEY,
    transaction_id INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    state          TEXT    NOT NULL,                   -- running, rebuilding, stopped or failed
    types          TEXT    NOT NULL,                   -- JSON list of the type names it reads
    error          TEXT,                               -- why it failed, if it did
    updated_at     REAL    NOT NULL                    -- Unix seconds
) WITHOUT ROWID;
CREATE TABLE facta_dead_letters (
    projection     TEXT    NOT NULL,
    transaction_id INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    type           TEXT    NOT NULL,
    error          TEXT    NOT NULL,
    failed_at      REAL    NOT NULL,                   -- Unix seconds
    PRIMARY KEY (projection, transaction_id, position)
) WITHOUT ROWID;
