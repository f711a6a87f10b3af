-- facta SQLite schema, migration 2: what a store records of a stream beside its events.
-- A stream has a row here only when it has something to record (see facta.lifecycle): the
-- aggregate type of the repository that created it (streams of plain appends have none, and
-- load as any type), a deletion, a truncation, a retention.
CREATE TABLE facta_streams (
    stream_id      TEXT    PRIMARY KEY,
    aggregate_type TEXT,                               -- refused to a repository of another type
    deleted_at     REAL,                               -- Unix seconds, NULL while not deleted
    hard_deleted   INTEGER NOT NULL DEFAULT 0,         -- 1: its events are gone, for good
    version        INTEGER NOT NULL DEFAULT 0,         -- its version when hard-deleted
    first_version  INTEGER NOT NULL DEFAULT 1,         -- the events before it were truncated
    max_age        REAL,                               -- retention in seconds (NULL: none)
    max_count      INTEGER                             -- retention in events (NULL: none)
) WITHOUT ROWID;
