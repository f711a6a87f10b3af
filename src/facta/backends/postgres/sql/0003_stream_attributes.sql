-- facta PostgreSQL schema, version 3: what a store records of a stream beside its version
-- (see facta.lifecycle). Adding columns that are NULL or have a constant default rewrites
-- nothing.
ALTER TABLE {schema}.facta_streams
    -- The aggregate type of the repository that created the stream (NULL for streams of
    -- plain appends, which load as any type); a repository of another type is refused.
    ADD COLUMN aggregate_type text,
    -- Set while the stream is deleted; hard_deleted: its events are gone, for good.
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN hard_deleted boolean NOT NULL DEFAULT false,
    -- The events before first_version were truncated.
    ADD COLUMN first_version bigint NOT NULL DEFAULT 1,
    -- Retention, applied by facta prune (NULL: none): seconds, and a number of events.
    ADD COLUMN max_age double precision,
    ADD COLUMN max_count bigint;
