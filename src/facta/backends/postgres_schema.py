# WARNING: generated from src/facta/backends/postgres_schema_async.py by tools/gen_sync.py; do not edit.
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
from psycopg import Connection, sql

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


def current_version(conn: Connection[Any], schema: str) -> int:
    """The schema's applied version: 0 when facta has never migrated it."""
    table = sql.SQL("{}.facta_migrations").format(sql.Identifier(schema)).as_string()
    cur = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    found = cur.fetchone()
    if not found or not found[0]:
        return 0
    cur = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.facta_migrations").format(
            sql.Identifier(schema)
        )
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _refuse_newer(schema: str, current: int) -> None:
    latest = latest_version()
    if current > latest:
        raise SchemaVersionError(
            f"PostgreSQL schema {schema!r} is at facta schema version {current}, but this facta "
            f"knows versions up to {latest}; upgrade facta"
        )


def check_schema(conn: Connection[Any], schema: str, *, migrate: bool) -> None:
    """Make sure the schema is at the latest version, migrating it when ``migrate`` is true.

    Raises ``SchemaVersionError`` for a schema newer than this facta, or an old one when
    ``migrate`` is false.
    """
    current = current_version(conn, schema)
    _refuse_newer(schema, current)
    if current == latest_version():
        return
    if not migrate:
        raise SchemaVersionError(
            f"PostgreSQL schema {schema!r} is at facta schema version {current}, but this facta "
            f"needs version {latest_version()}; run `facta migrate URL`"
        )
    apply_migrations(conn, schema)


def apply_migrations(conn: Connection[Any], schema: str) -> list[int]:
    """Apply the pending migrations in one transaction; the numbers applied, in order.

    ``conn`` must be in autocommit mode (no transaction open).
    """
    schema_id = sql.Identifier(schema)
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, _lock_key(schema)])
        cur = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        if cur.fetchone() is None:  # CREATE SCHEMA IF NOT EXISTS needs CREATE rights
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema_id))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.facta_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema_id)
        )
        current = current_version(conn, schema)
        _refuse_newer(schema, current)
        for number, template in migrations():
            if number > current:
                conn.execute(sql.SQL(template).format(schema=schema_id))
                conn.execute(
                    sql.SQL("INSERT INTO {}.facta_migrations (version) VALUES (%s)").format(
                        schema_id
                    ),
                    [number],
                )
                applied.append(number)
    return applied


def migrate(url: str, *, schema: str | None = None) -> list[int]:
    """Apply the pending schema migrations of the store at ``url``; the numbers applied.

    Safe to run from several processes at once (they queue on an advisory lock); returns
    ``[]`` when the schema is up to date. Raises ``SchemaVersionError`` for a schema newer
    than this facta knows.
    """
    conninfo, name = split_url(url, schema)
    try:
        with Connection.connect(conninfo, autocommit=True) as conn:
            return apply_migrations(conn, name)
    except psycopg.Error as e:
        raise StoreError(f"migrating PostgreSQL ({describe(conninfo, name)}) failed: {e}") from e
