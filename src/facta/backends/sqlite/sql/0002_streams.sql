-- facta SQLite schema, migration 2: what a stream records beside its events.
-- A stream has a row here only when it has something to record: the aggregate type of the
-- repository that created it (streams of plain appends have none, and load as any type).
CREATE TABLE facta_streams (
    stream_id      TEXT    PRIMARY KEY,
    aggregate_type TEXT    NOT NULL                    -- refused to a repository of another type
) WITHOUT ROWID;
