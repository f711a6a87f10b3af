"""The catalog of a partitioned store, in the home (first) partition's schema.

Three small tables, made on first use under an advisory lock (``CREATE TABLE IF NOT EXISTS``;
no numbered migration: they belong to partitioned stores only): ``facta_partitions`` (each
partition's name and location, host and schema, never a password), ``facta_partition_routes``
(slice ranges and the partition holding each) and ``facta_partition_checkpoints`` (each
projection's place in every partition, moved in the read model's transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from facta.backends.partitioned.routing import Routes
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.errors import ConfigurationError, StoreError
from facta.slices import SliceRange

__all__ = ["load_catalog", "move_location"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('facta.partitions.' || %s, 0))"
_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.facta_partitions (
    name text PRIMARY KEY, location text NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.facta_partition_routes (
    first_slice integer PRIMARY KEY, last_slice integer NOT NULL,
    partition text NOT NULL REFERENCES {schema}.facta_partitions (name));
CREATE TABLE IF NOT EXISTS {schema}.facta_partition_checkpoints (
    projection text NOT NULL, partition text NOT NULL,
    transaction_id bigint NOT NULL DEFAULT 0, position bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (projection, partition))"""


def _text(template: str, schema: str) -> sql.Composed:
    return sql.SQL(template).format(schema=sql.Identifier(schema))


async def load_catalog(
    home: AsyncPostgresRecorder, locations: Mapping[str, str], routed: bool
) -> Routes | None:
    """Make the catalog if needed and check ``locations`` against it; the routes by hash
    (``routed``; first use: an even split over the partitions), else None."""
    try:
        async with home.connection() as conn, conn.transaction():
            await conn.execute(_LOCK, (home.schema,))
            table = sql.Identifier(home.schema, "facta_partition_checkpoints").as_string(conn)
            cur = await conn.execute("SELECT to_regclass(%s) IS NULL", (table,))
            if (await cur.fetchone()) == (True,):  # no catalog yet (read-only stores make none)
                await conn.execute(_text(_TABLES, home.schema))
            stored = await _fetch(
                conn, "SELECT name, location FROM {schema}.facta_partitions", home
            )
            if not stored:
                await _insert_locations(conn, home, locations)
            else:
                _check_locations(dict(stored), locations)
            if not routed:
                return None
            query = "SELECT first_slice, last_slice, partition FROM {schema}.facta_partition_routes"
            rows = await _fetch(conn, query, home)
            if rows:
                return Routes.from_ranges(
                    (SliceRange(first, last), name) for first, last, name in rows
                )
            routes = Routes.even(list(locations))
            insert = "INSERT INTO {schema}.facta_partition_routes VALUES (%s, %s, %s)"
            for (first, last), name in routes.ranges():
                await conn.execute(_text(insert, home.schema), (first, last, name))
            return routes
    except psycopg.Error as e:
        raise StoreError(f"partitioned store at {home.location}: its catalog: {e}") from e


async def move_location(home: AsyncPostgresRecorder, name: str, location: str) -> None:
    """Record that partition ``name`` is now at ``location``."""
    query = _text("UPDATE {schema}.facta_partitions SET location = %s WHERE name = %s", home.schema)
    async with home.connection() as conn:
        await conn.execute(query, (location, name))


async def _fetch(conn: Any, template: str, home: AsyncPostgresRecorder) -> list[tuple[Any, ...]]:
    cur = await conn.execute(_text(template, home.schema))
    return list(await cur.fetchall())


async def _insert_locations(
    conn: Any, home: AsyncPostgresRecorder, locations: Mapping[str, str]
) -> None:
    insert = _text("INSERT INTO {schema}.facta_partitions VALUES (%s, %s)", home.schema)
    for name, location in locations.items():
        await conn.execute(insert, (name, location))


def _check_locations(stored: dict[str, str], given: Mapping[str, str]) -> None:
    if set(stored) != set(given):
        raise ConfigurationError(
            f"this partitioned store has partitions {sorted(stored)}, not {sorted(given)}: open "
            "it with the same names (adding or removing partitions is not supported)"
        )
    for name, location in given.items():
        if stored[name] != location:
            raise ConfigurationError(
                f"partition {name!r} is at {stored[name]} according to the catalog, but was "
                f"given at {location}: it was moved; open it at its new place"
            )
