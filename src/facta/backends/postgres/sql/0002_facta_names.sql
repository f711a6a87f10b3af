-- facta PostgreSQL schema, version 2: every name facta stores starts with facta_, so a store
-- can share a schema (public, say) with an application's own events or streams tables; and the
-- projection tables, which 0.1 created on first use, come from this migration.
-- {schema} stands for the store's quoted schema name (a literal brace would have to be doubled).
--
-- A schema reaches this migration only with version 1 recorded in facta_migrations, so the
-- 0.1 names below are facta's own: they are renamed, data and all.

ALTER TABLE {schema}.streams RENAME CONSTRAINT streams_pkey TO facta_streams_pkey;
ALTER TABLE {schema}.streams RENAME TO facta_streams;

ALTER TABLE {schema}.events RENAME CONSTRAINT events_pkey TO facta_events_pkey;
ALTER TABLE {schema}.events RENAME CONSTRAINT events_stream_version_key
    TO facta_events_stream_version_key;
-- The recorder tells a repeated event id by this constraint's name.
ALTER TABLE {schema}.events RENAME CONSTRAINT events_event_id_key TO facta_events_event_id_key;
ALTER SEQUENCE {schema}.events_position_seq RENAME TO facta_events_position_seq;
ALTER TABLE {schema}.events RENAME TO facta_events;

ALTER TABLE {schema}.snapshots RENAME CONSTRAINT snapshots_pkey TO facta_snapshots_pkey;
ALTER TABLE {schema}.snapshots RENAME TO facta_snapshots;

-- Projections: 0.1 made these tables in the store's schema when a runner first opened.
ALTER TABLE IF EXISTS {schema}.projection_checkpoints
    RENAME CONSTRAINT projection_checkpoints_pkey TO facta_projections_pkey;
ALTER TABLE IF EXISTS {schema}.projection_checkpoints RENAME TO facta_projections;
ALTER TABLE IF EXISTS {schema}.projection_dead_letters
    RENAME CONSTRAINT projection_dead_letters_pkey TO facta_dead_letters_pkey;
ALTER TABLE IF EXISTS {schema}.projection_dead_letters RENAME TO facta_dead_letters;

-- One row per projection: its checkpoint, what it reads and how its last runner ended.
CREATE TABLE IF NOT EXISTS {schema}.facta_projections (
    name           text NOT NULL,
    transaction_id bigint NOT NULL,
    position       bigint NOT NULL,
    state          text NOT NULL,    -- running, rebuilding, stopped or failed
    types          text[] NOT NULL,  -- the type names it reads (for its lag)
    error          text,             -- why it failed, if it did
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT facta_projections_pkey PRIMARY KEY (name)
);

-- The events a projection parked instead of stopping (OnError.DEAD_LETTER).
CREATE TABLE IF NOT EXISTS {schema}.facta_dead_letters (
    projection     text NOT NULL,
    transaction_id bigint NOT NULL,
    position       bigint NOT NULL,
    stream_id      text NOT NULL,
    version        bigint NOT NULL,
    event_id       uuid NOT NULL,
    type           text NOT NULL,
    error          text NOT NULL,
    failed_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT facta_dead_letters_pkey PRIMARY KEY (projection, transaction_id, position)
);
