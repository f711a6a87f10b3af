-- facta PostgreSQL schema, version 1: streams, the events table (the global log), snapshots.
-- {schema} stands for the store's quoted schema name (a literal brace would have to be doubled).

-- One row per stream: its current version. An append locks its stream's row first, so
-- writers of one stream queue up here: the loser of a race sees the winner's version and
-- never inserts an event (never burns a position).
CREATE TABLE {schema}.streams (
    stream_id text COLLATE "C" NOT NULL PRIMARY KEY,  -- "C": code point order, as in Python
    version   bigint NOT NULL
) WITH (fillfactor = 70);  -- room for HOT updates: the version changes on every append

CREATE TABLE {schema}.events (
    transaction_id bigint NOT NULL,  -- the writer's pg_current_xact_id()
    position       bigint GENERATED ALWAYS AS IDENTITY,
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,  -- 1, 2, 3 ... per stream, no gaps
    event_id       uuid NOT NULL,
    type           text COLLATE "C" NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,  -- codec stages: 0 plain JSON, 1 zlib
    data           bytea NOT NULL,
    metadata       bytea NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- The global log is read in (transaction_id, position) order; see the store's read_all.
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, position),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE TABLE {schema}.snapshots (
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,
    aggregate_type text NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,
    checksum       bigint NOT NULL,
    state          bytea NOT NULL,
    PRIMARY KEY (stream_id, version)
);
