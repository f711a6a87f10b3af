"""The PostgreSQL store's schema: versioned SQL files, applied in order under an advisory lock.

Each ``sql/postgres/NNNN_name.sql`` file is one migration; ``facta_migrations`` in the store's
schema records which ones ran. Two processes migrating at once queue on a PostgreSQL advisory
lock, so each migration runs once. A store refuses a schema newer than the files it ships.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from facta.backends.postgres_sql import describe, split_url
from facta.errors import SchemaVersionError, StoreError

__all__ = ["apply_migrations", "check_schema", "latest_version", "migrate", "migrations"]

# The advisory lock's first key: "fact" in ASCII; the second is a hash of the schema name.
_LOCK_CLASS = 0x66616374


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big", signed=True)


@cache
def migrations() -> tuple[tuple[int, str], ...]:
    """``(number, SQL template)`` for every shipped migration, in order."""
    folder = resources.files("facta.backends") / "sql" / "postgres"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return tuple((int(f.name.split("_", 1)[0]), f.read_text(encoding="utf-8")) for f in files)


def latest_version() -> int:
    """The newest schema version this facta knows."""
    return migrations()[-1][0]


async def current_version(conn: AsyncConnection[Any], schema: str) -> int:
    """The schema's applied version: 0 when facta has never migrated it."""
    table = sql.SQL("{}.facta_migrations").format(sql.Identifier(schema)).as_string()
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    found = await cur.fetchone()
    if not found or not found[0]:
        return 0
    cur = await conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.facta_migrations").format(
            sql.Identifier(schema)
        )
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def _refuse_newer(schema: str, current: int) -> None:
    latest = latest_version()
    if current > latest:
        raise SchemaVersionError(
            f"PostgreSQL schema {schema!r} is at facta schema version {current}, but this facta "
            f"knows versions up to {latest}; upgrade facta"
        )


async def check_schema(conn: AsyncConnection[Any], schema: str, *, migrate: bool) -> None:
    """Make sure the schema is at the latest version, migrating it when ``migrate`` is true.

    Raises ``SchemaVersionError`` for a schema newer than this facta, or an old one when
    ``migrate`` is false.
    """
    current = await current_version(conn, schema)
    _refuse_newer(schema, current)
    if current == latest_version():
        return
    if not migrate:
        raise SchemaVersionError(
            f"PostgreSQL schema {schema!r} is at facta schema version {current}, but this facta "
            f"needs version {latest_version()}; run `facta migrate URL`"
        )
    await apply_migrations(conn, schema)


async def apply_migrations(conn: AsyncConnection[Any], schema: str) -> list[int]:
    """Apply the pending migrations in one transaction; the numbers applied, in order.

    ``conn`` must be in autocommit mode (no transaction open).
    """
    schema_id = sql.Identifier(schema)
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, _lock_key(schema)])
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        if await cur.fetchone() is None:  # CREATE SCHEMA IF NOT EXISTS needs CREATE rights
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema_id))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.facta_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema_id)
        )
        current = await current_version(conn, schema)
        _refuse_newer(schema, current)
        for number, template in migrations():
            if number > current:
                await conn.execute(sql.SQL(template).format(schema=schema_id))
                await conn.execute(
                    sql.SQL("INSERT INTO {}.facta_migrations (version) VALUES (%s)").format(
                        schema_id
                    ),
                    [number],
                )
                applied.append(number)
    return applied


async def migrate(url: str, *, schema: str | None = None) -> list[int]:
    """Apply the pending schema migrations of the store at ``url``; the numbers applied.

    Safe to run from several processes at once (they queue on an advisory lock); returns
    ``[]`` when the schema is up to date. Raises ``SchemaVersionError`` for a schema newer
    than this facta knows.
    """
    conninfo, name = split_url(url, schema)
    try:
        async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
            return await apply_migrations(conn, name)
    except psycopg.Error as e:
        raise StoreError(f"migrating PostgreSQL ({describe(conninfo, name)}) failed: {e}") from e
