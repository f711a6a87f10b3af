"""Opening a SQLite file for facta: the store's connection, and a projection runner's.

A store opened ``read_only`` reads the file through SQLite's ``mode=ro``, so nothing can be
written to it or created; one opened with ``create=False`` (``mode=rw``) never creates the
file. Either way a file that holds no facta store is left as it was.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from facta.backends.sqlite import schema
from facta.errors import NotAFactaStore, StoreError

__all__ = ["MEMORY", "connect", "describe", "open_store"]

MEMORY = ":memory:"


def describe(path: str) -> str:
    """The file, as messages name it."""
    return "a SQLite ':memory:' database" if path == MEMORY else f"SQLite file {path!r}"


def connect(path: str, timeout: float, mode: str | None = None) -> sqlite3.Connection:
    """A connection in autocommit mode (facta begins its own transactions).

    ``mode`` is SQLite's URI mode: ``"ro"`` (read only) or ``"rw"`` (never creates the file);
    None opens the file, creating it if missing.
    """
    target, uri = path, False
    if mode is not None and path != MEMORY:
        target, uri = f"{Path(path).absolute().as_uri()}?mode={mode}", True
    return sqlite3.connect(
        target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
    )


def open_store(
    path: str, url: str, *, timeout: float, migrate: bool, create: bool, read_only: bool
) -> tuple[sqlite3.Connection, list[int]]:
    """The store's connection, its schema checked (and migrated as allowed); the migrations
    applied.

    Raises ``NotAFactaStore`` (nothing created or changed) when ``create`` is false and the
    file is missing or holds no facta store, ``SchemaVersionError`` when its schema is newer
    than this facta, or older and ``migrate`` is false.
    """
    location = describe(path)
    if read_only:
        create = migrate = False
    if not create and (path == MEMORY or not os.path.exists(path)):
        missing = "a new in-memory database is empty" if path == MEMORY else "no such file"
        raise NotAFactaStore(
            f"{location} is not a facta store ({missing}); nothing was created (check the URL "
            f"{url!r}, or open it with create=True)"
        )
    try:
        db = connect(path, timeout, "ro" if read_only else None if create else "rw")
    except sqlite3.Error as e:
        raise StoreError(f"cannot open {location}: {e}") from e
    try:
        applied = schema.prepare(db, location, url, create=create, migrate=migrate)
        if not read_only:
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode up to a power cut
    except sqlite3.Error as e:
        db.close()
        if e.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise NotAFactaStore(
                f"{location} is not a facta store (it is not a SQLite database); nothing was "
                f"created or changed (check the URL {url!r})"
            ) from e
        raise StoreError(f"cannot open {location}: {e}") from e
    except BaseException:
        db.close()
        raise
    return db, applied
