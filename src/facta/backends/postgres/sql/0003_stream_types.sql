-- facta PostgreSQL schema, version 3: a stream records the aggregate type of the repository
-- that created it (NULL for streams of plain appends, which load as any type); a repository
-- of another type is refused. Adding a NULL column rewrites nothing.

ALTER TABLE {schema}.facta_streams ADD COLUMN aggregate_type text;
