-- facta PostgreSQL schema, version 6: every event carries its stream's slice, and projections
-- can be split into slice ranges leased to worker processes (facta.projections.SlicedRunner).
-- {schema} stands for the store's quoted schema name (a literal brace would have to be doubled).

-- The slice: facta.slices.SLICE_SQL of the stream id (the same value as facta.slices.slice_of
-- in Python). A stored generated column: every path that inserts an event fills it (appends,
-- markers, appends in a caller's transaction), and adding it fills the existing rows (the table
-- is rewritten once, under an exclusive lock, as any backfill would).
ALTER TABLE {schema}.facta_events ADD COLUMN slice smallint NOT NULL
    GENERATED ALWAYS AS ((('x' || substr(md5(stream_id), 1, 4))::bit(16)::int & 1023)::smallint)
    STORED;

-- One row per sliced projection: how many ranges it is split into, what it reads, how it ended.
CREATE TABLE {schema}.facta_sliced_projections (
    name           text NOT NULL,
    ranges         integer NOT NULL,  -- how many slice ranges (facta.slices.split_slices)
    types          text[] NOT NULL,   -- the type names it reads (for its lag)
    state          text NOT NULL,     -- running, rebuilding, stopped or failed
    error          text,              -- why it failed, if it did
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT facta_sliced_projections_pkey PRIMARY KEY (name)
);

-- One row per slice range of a sliced projection: who holds it until when, its fencing token
-- (incremented whenever it changes hands) and its checkpoint, which moves in the transaction
-- that writes the read model, only while the token is still the holder's.
CREATE TABLE {schema}.facta_slice_leases (
    projection     text NOT NULL,
    first_slice    smallint NOT NULL,
    last_slice     smallint NOT NULL,
    owner          text,                 -- the worker holding it; NULL when free
    token          bigint NOT NULL DEFAULT 0,
    expires_at     timestamptz NOT NULL DEFAULT 'epoch',
    transaction_id bigint NOT NULL DEFAULT 0,
    position       bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT facta_slice_leases_pkey PRIMARY KEY (projection, first_slice),
    CONSTRAINT facta_slice_leases_projection_fkey FOREIGN KEY (projection)
        REFERENCES {schema}.facta_sliced_projections (name) ON DELETE CASCADE
);

-- The workers of sliced projections: each renews its row (a heartbeat); one whose row expired
-- is dead, and its ranges go to the others once their leases expire too.
CREATE TABLE {schema}.facta_projection_workers (
    projection     text NOT NULL,
    worker         text NOT NULL,
    expires_at     timestamptz NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT facta_projection_workers_pkey PRIMARY KEY (projection, worker)
);
