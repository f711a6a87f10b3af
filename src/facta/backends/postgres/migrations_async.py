"""The PostgreSQL store's schema: versioned SQL files, applied in order under an advisory lock.

Each ``sql/NNNN_name.sql`` file is one migration; ``facta_migrations`` in the store's schema
records which ones ran, and is the only proof that a schema holds a facta store: facta never
takes a table for its own by its name alone. Two processes migrating one schema queue on an
advisory lock, so each migration runs once. A store refuses a schema newer than the files it
ships.

Migrations are history and never change: 0001 is facta 0.1's layout (``streams``, ``events``,
``snapshots``), 0002 renames it to ``facta_*`` names. A new store in a new or empty schema runs
them there. In a schema already holding other objects (``public``, beside an application's own
``events`` table) they run in a scratch schema of the same transaction, whose tables then move
in: the 0.1 names never meet the application's. That needs the right to create a schema.
"""

from __future__ import annotations

import hashlib
import uuid
from functools import cache
from importlib import resources
from typing import Any

from psycopg import AsyncConnection, errors, sql

from facta.backends.postgres.settings import Settings
from facta.errors import NotAFactaStore, SchemaVersionError, StoreError

__all__ = ["apply_migrations", "check_schema", "latest_version", "migrations", "stored_version"]

# Every table of facta's: one of them without facta_migrations means the schema is not facta's.
_TABLES = (
    "facta_migrations",
    "facta_events",
    "facta_streams",
    "facta_snapshots",
    "facta_projections",
    "facta_dead_letters",
    "facta_data_keys",
    "facta_inbox_streams",
    "facta_inbox_held",
    "facta_sliced_projections",
    "facta_slice_leases",
    "facta_projection_workers",
)

# The advisory lock's first key: "fact" in ASCII; the second is a hash of the schema name.
_LOCK_CLASS = 0x66616374


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big", signed=True)


@cache
def migrations() -> tuple[tuple[int, str], ...]:
    """``(number, SQL template)`` for every shipped migration, in order."""
    folder = resources.files("facta.backends.postgres") / "sql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return tuple((int(f.name.split("_", 1)[0]), f.read_text(encoding="utf-8")) for f in files)


def latest_version() -> int:
    """The newest schema version this facta knows."""
    return migrations()[-1][0]


async def stored_version(conn: AsyncConnection[Any], schema: str, location: str) -> int:
    """The facta version of ``schema``: 0 when it holds no facta store (or does not exist).

    Raises ``NotAFactaStore`` for a schema holding a table of facta's names
    (``facta_events``...) but no ``facta_migrations``: someone else's, which facta must not use.
    """
    cur = await conn.execute(
        "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(%s || '.' || name) IS NOT NULL",
        [list(_TABLES), sql.Identifier(schema).as_string()],
    )
    found = {row[0] for row in await cur.fetchall()}
    version = 0
    if "facta_migrations" in found:
        table = sql.Identifier(schema, "facta_migrations")
        cur = await conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(table))
        row = await cur.fetchone()
        version = int(row[0]) if row else 0
    foreign = sorted(found - {"facta_migrations"})
    if version == 0 and foreign:
        raise NotAFactaStore(
            f"not a facta store: schema {schema!r} at {location} holds a "
            f"{', '.join(foreign)} table that facta did not make (there is no "
            "facta_migrations), so it is not facta's and facta leaves it alone. Choose another "
            "schema for the store (?schema=NAME in the URL)"
        )
    return version


async def check_schema(conn: AsyncConnection[Any], settings: Settings) -> None:
    """Make sure the store's schema holds a facta store at the latest version.

    Creates or migrates it as ``settings`` allow; raises ``NotAFactaStore`` where there is no
    store and ``create`` is false, ``SchemaVersionError`` for a schema newer than this facta
    or an old one when ``migrate`` is false.
    """
    schema, location = settings.schema, settings.location
    version = await stored_version(conn, schema, location)
    _refuse_newer(schema, location, version)
    if version == latest_version():
        return
    if version == 0 and not settings.create:
        raise _not_a_store(schema, location)
    if not settings.migrate:
        now = "holds no facta store yet" if version == 0 else f"is at version {version}"
        raise SchemaVersionError(
            f"schema {schema!r} at {location} {now}, but this facta needs facta schema version "
            f"{latest_version()}; run `facta migrate URL` (or open it with migrate=True)"
        )
    await apply_migrations(conn, settings)


async def apply_migrations(conn: AsyncConnection[Any], settings: Settings) -> list[int]:
    """Apply the pending migrations in one transaction; the numbers applied, in order.

    ``conn`` must be in autocommit mode (no transaction open). A schema without a store gets
    one only if ``settings.create``; otherwise ``NotAFactaStore``.
    """
    schema, location = settings.schema, settings.location
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, _lock_key(schema)])
        cur = await conn.execute(
            "SELECT NOT EXISTS (SELECT FROM pg_class WHERE relnamespace = n.oid)"
            " AND NOT EXISTS (SELECT FROM pg_type WHERE typnamespace = n.oid)"
            " FROM pg_namespace n WHERE n.nspname = %s",
            [schema],
        )
        found = await cur.fetchone()
        version = 0 if found is None else await stored_version(conn, schema, location)
        _refuse_newer(schema, location, version)
        pending = [(number, text) for number, text in migrations() if number > version]
        if not pending:
            return []
        build_in = schema
        if version == 0:
            if not settings.create:
                raise _not_a_store(schema, location)
            if found is None:  # CREATE SCHEMA IF NOT EXISTS would need CREATE rights anyway
                await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            elif not found[0]:  # other objects live there: build beside them, then move in
                build_in = await _scratch_schema(conn, schema, location)
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(schema, "facta_migrations"))
            )
        record = sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(
            sql.Identifier(schema, "facta_migrations")
        )
        for number, template in pending:
            await conn.execute(sql.SQL(template).format(schema=sql.Identifier(build_in)))
            await conn.execute(record, [number])
        if build_in != schema:
            await _move_tables(conn, build_in, schema)
    return [number for number, _ in pending]


async def _scratch_schema(conn: AsyncConnection[Any], schema: str, location: str) -> str:
    """A new, empty schema to run the migrations in (dropped by the same transaction)."""
    name = f"facta_scratch_{uuid.uuid4().hex}"
    try:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    except errors.InsufficientPrivilege as e:
        raise StoreError(
            f"cannot create a facta store in schema {schema!r} at {location}: it holds other "
            "tables, so facta builds its own in a scratch schema and moves them in, which needs "
            f"the right to create a schema in the database ({e}). Grant it (GRANT CREATE ON "
            "DATABASE), or give the store an empty schema (?schema=NAME in the URL)"
        ) from e
    return name


async def _move_tables(conn: AsyncConnection[Any], source: str, target: str) -> None:
    """Move every table of schema ``source`` (with its indexes and sequences) into ``target``,
    then drop ``source``, which must be left empty."""
    cur = await conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        [source],
    )
    for (table,) in await cur.fetchall():
        await conn.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(source, table), sql.Identifier(target)
            )
        )
    await conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(source)))


def _refuse_newer(schema: str, location: str, version: int) -> None:
    latest = latest_version()
    if version > latest:
        raise SchemaVersionError(
            f"schema {schema!r} at {location} is at facta schema version {version}, but this "
            f"facta knows versions up to {latest}; upgrade facta"
        )


def _not_a_store(schema: str, location: str) -> NotAFactaStore:
    return NotAFactaStore(
        f"not a facta store: schema {schema!r} at {location} holds no facta store; nothing was "
        "created. To make one there, run `facta migrate URL` (or open it with create=True)"
    )
