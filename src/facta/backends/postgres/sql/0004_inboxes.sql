-- facta PostgreSQL schema, version 4: what inboxes (facta.publishing.Inbox) keep beside the
-- read models they feed. An inbox is named like a projection (and locked like one).

-- How far each inbox got in each stream of the store that sent the events: the version it
-- applied last and that event's id. A message at or below it is a duplicate.
CREATE TABLE {schema}.facta_inbox_streams (
    inbox      text NOT NULL,
    stream_id  text NOT NULL,
    version    bigint NOT NULL,
    event_id   uuid NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    marker     bigint NOT NULL DEFAULT 0,  -- the position of the last lifecycle marker applied
    CONSTRAINT facta_inbox_streams_pkey PRIMARY KEY (inbox, stream_id)
);

-- The messages an inbox holds back, as received: parked ones (error NULL) wait for their
-- stream's earlier versions, dead letters (an error) wait for a person.
CREATE TABLE {schema}.facta_inbox_held (
    inbox     text NOT NULL,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    stream_id text,            -- NULL when the headers do not say (and for the next two)
    version   bigint,
    event_id  text,
    subject   text NOT NULL,
    headers   jsonb NOT NULL,
    data      bytea NOT NULL,
    error     text,            -- NULL: parked, otherwise why it is a dead letter
    held_at   timestamptz NOT NULL,
    CONSTRAINT facta_inbox_held_pkey PRIMARY KEY (inbox, id)
);
-- One parked message per stream version, found by stream when its turn comes.
CREATE UNIQUE INDEX facta_inbox_held_parked ON {schema}.facta_inbox_held
    (inbox, stream_id, version) WHERE error IS NULL;
