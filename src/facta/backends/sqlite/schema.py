"""The SQLite backend's schema: what a file holds, and the migrations that bring it up to date.

Every table of facta's is named ``facta_...``, so an application may keep its own tables in
the same file; ``facta_migrations`` records each migration applied (an application's
``PRAGMA user_version`` is left to it). Migrations are the ``sql/NNNN_name.sql`` files,
applied in order in one ``BEGIN IMMEDIATE`` transaction. Migration 1 also takes over a facta
0.1 file (tables ``events``, ``snapshots`` and ``projection_*``, its version in
``user_version``): it renames those tables into the new names, data intact, and sets
``user_version`` to 2 so that facta 0.1 refuses the file ("upgrade facta").

Plain sync code on a ``sqlite3`` connection: both recorders call it under their lock.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
from importlib import resources
from typing import NamedTuple

from facta.errors import NotAFactaStore, SchemaVersionError

__all__ = [
    "TABLES",
    "Found",
    "Migration",
    "apply",
    "latest_version",
    "migrations",
    "pending",
    "survey",
]

# Every table facta keeps in a file: finding one of them without facta_migrations means the
# file is someone else's.
TABLES = (
    "facta_migrations",
    "facta_events",
    "facta_streams",
    "facta_snapshots",
    "facta_projections",
    "facta_dead_letters",
    "facta_data_keys",
    "facta_inbox_streams",
    "facta_inbox_held",
)

# facta 0.1's tables, their columns, and the names migration 1 gives them.
_LEGACY = {
    "events": (
        "facta_events",
        (
            "position",
            "stream_id",
            "version",
            "event_id",
            "type",
            "schema_version",
            "encoding",
            "data",
            "metadata",
            "recorded_at",
        ),
    ),
    "snapshots": (
        "facta_snapshots",
        (
            "stream_id",
            "version",
            "aggregate_type",
            "schema_version",
            "encoding",
            "checksum",
            "state",
        ),
    ),
    "projection_checkpoints": (
        "facta_projections",
        ("name", "transaction_id", "position", "state", "types", "error", "updated_at"),
    ),
    "projection_dead_letters": (
        "facta_dead_letters",
        (
            "projection",
            "transaction_id",
            "position",
            "stream_id",
            "version",
            "event_id",
            "type",
            "error",
            "failed_at",
        ),
    ),
}
_LEGACY_INDEX = "events_type"
_LEGACY_USER_VERSION = 1
_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
_CREATES_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(\w+)", re.IGNORECASE | re.MULTILINE)


class Migration(NamedTuple):
    """One file of ``sql/``: its number, its name and its statements."""

    number: int
    name: str
    statements: tuple[str, ...]


class Found(NamedTuple):
    """What a file holds: a facta store or not, and at which migration.

    ``version`` is the last migration applied (0 for none, and for a facta 0.1 store, whose
    ``legacy`` tables migration 1 renames).
    """

    store: bool
    version: int
    legacy: bool = False


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with facta, in order."""
    found = []
    for item in (resources.files(__package__) / "sql").iterdir():
        match = _FILE.fullmatch(item.name)
        if match is None:
            continue
        text = item.read_text(encoding="utf-8")
        statements = tuple(s.strip() for s in text.split(";") if _code(s))
        found.append(Migration(int(match[1]), match[2], statements))
    found.sort()
    if [m.number for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"facta's SQLite migrations are not numbered 1, 2, 3...: {found}")
    return tuple(found)


def latest_version() -> int:
    """The number of the last migration this facta knows."""
    return migrations()[-1].number


def survey(db: sqlite3.Connection, location: str) -> Found:
    """What ``db`` holds, by reading it only; ``NotAFactaStore`` (a ``StoreError``) if it
    holds a table named like one of facta's that is not facta's."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "facta_migrations" in tables:
        version: int = db.execute(
            "SELECT coalesce(max(version), 0) FROM facta_migrations"
        ).fetchone()[0]
        return Found(True, version)
    taken = sorted(tables.intersection(TABLES))
    if taken:
        raise NotAFactaStore(
            f"{location} is not a facta store: it holds a table named {taken[0]!r} but no "
            "facta_migrations table, so that table is not facta's (another program's?) and "
            "facta leaves the file alone; choose another file for the event store"
        )
    if _is_legacy(db, tables):
        return Found(True, 0, legacy=True)
    return Found(False, 0)


def pending(found: Found, location: str, url: str, *, create: bool) -> str | None:
    """What keeps the store ``found`` from being used until it is migrated (None: nothing).

    Raises ``NotAFactaStore`` for a file holding no store when ``create`` is false (a file
    that is not facta's is left exactly as it was), ``SchemaVersionError`` for a schema newer
    than this facta.
    """
    if not found.store:
        if not create:
            raise NotAFactaStore(
                f"{location} is not a facta store (it holds none of facta's tables); nothing "
                f"was created or changed (check the URL {url!r})"
            )
        return f"{location} holds no facta store yet (its tables are made by migration)"
    _refuse_newer(found, location)
    if found.version == latest_version():
        return None
    held = "a facta 0.1 store" if found.legacy else f"facta schema version {found.version}"
    return f"{location} holds {held}, but this facta needs version {latest_version()}"


def apply(db: sqlite3.Connection, location: str, *, create: bool = True) -> list[int]:
    """Apply the pending migrations in one transaction; their numbers ([] when up to date).

    With ``create`` false, a file holding no store raises ``NotAFactaStore``.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = survey(db, location)  # again, under the write lock: others may have migrated
        _refuse_newer(found, location)
        if not found.store and not create:
            raise NotAFactaStore(
                f"{location} is not a facta store (it holds none of facta's tables); nothing "
                "was created or changed"
            )
        applied = []
        for migration in migrations():
            if migration.number <= found.version:
                continue
            renamed = _rename_legacy_tables(db) if found.legacy and migration.number == 1 else ()
            for statement in migration.statements:
                if _creates_table(statement) not in renamed:
                    db.execute(statement)
            db.execute(
                "INSERT INTO facta_migrations (version, applied_at) VALUES (?, ?)",
                (migration.number, time.time()),
            )
            applied.append(migration.number)
        if found.legacy:
            db.execute(f"PRAGMA user_version = {_LEGACY_USER_VERSION + 1}")  # facta 0.1 refuses
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    return applied


def _refuse_newer(found: Found, location: str) -> None:
    if found.version > latest_version():
        raise SchemaVersionError(
            f"{location} holds facta schema version {found.version}, but this facta knows "
            f"versions up to {latest_version()}; upgrade facta"
        )


def _columns(db: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))


def _is_legacy(db: sqlite3.Connection, tables: set[str]) -> bool:
    """Whether ``db`` is a facta 0.1 store: its version in user_version, its two tables."""
    if not {"events", "snapshots"} <= tables:
        return False
    if db.execute("PRAGMA user_version").fetchone()[0] != _LEGACY_USER_VERSION:
        return False
    return all(_columns(db, old) == _LEGACY[old][1] for old in ("events", "snapshots"))


def _rename_legacy_tables(db: sqlite3.Connection) -> set[str]:
    """Give facta 0.1's tables their new names (those of its projection tables it has); the
    new names given, whose ``CREATE TABLE`` migration 1 then skips."""
    db.execute(f"DROP INDEX IF EXISTS {_LEGACY_INDEX}")  # migration 1 makes facta_events_type
    renamed = set()
    for old, (new, columns) in _LEGACY.items():
        if _columns(db, old) == columns:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")
            renamed.add(new)
    return renamed


def _creates_table(statement: str) -> str | None:
    """The table ``statement`` creates, if it creates one."""
    match = _CREATES_TABLE.search(statement)
    return None if match is None else match[1]


def _code(text: str) -> bool:
    """Whether a piece of a migration file holds anything but comments and blanks."""
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())
