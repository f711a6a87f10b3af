"""The caller's connection an append joins (``store.append(..., connection=conn)``).

The append runs facta's statements on the caller's ``sqlite3.Connection`` (to the store's file,
a transaction open on it), under a savepoint; first a write that changes nothing takes the
file's write lock, so that what the append reads is current.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from facta.backends.sqlite.database import MEMORY
from facta.errors import UnusableConnection

__all__ = ["RELEASE", "ROLLBACK_TO", "SAVEPOINT", "WRITE_LOCK", "joinable", "plain_cursor", "undo"]

# An append in the caller's transaction writes under this savepoint (and one of a group
# commit in the store's own transaction).
SAVEPOINT = "SAVEPOINT facta_append"
RELEASE = "RELEASE facta_append"
ROLLBACK_TO = "ROLLBACK TO facta_append"
# A write that changes nothing: it takes the write lock, or fails at once if the transaction
# has read a snapshot another connection has written past since (SQLITE_BUSY_SNAPSHOT).
WRITE_LOCK = "UPDATE facta_streams SET version = version WHERE 0"


def joinable(connection: object, path: str, location: str) -> sqlite3.Connection:
    """The caller's connection, if an append to the store at ``path`` can join its transaction."""
    if not isinstance(connection, sqlite3.Connection):
        raise UnusableConnection(
            f"connection= on the store in {location} takes a sqlite3.Connection to its "
            f"file, got {type(connection).__module__}.{type(connection).__qualname__}; "
            "nothing was written"
        )
    if path == MEMORY:
        raise UnusableConnection(
            f"{location} is private to the store's own connection: no other "
            "connection can append in it (connection=); nothing was written"
        )
    try:
        in_transaction = connection.in_transaction
        files = [row[2] for row in plain_cursor(connection).execute("PRAGMA database_list")]
    except sqlite3.Error as e:
        raise UnusableConnection(f"connection= cannot be used ({e}); nothing was written") from e
    if not in_transaction:
        raise UnusableConnection(
            "connection= has no transaction open, so the append would commit on its own; "
            "nothing was written. Append inside the caller's transaction (begin it with "
            "BEGIN IMMEDIATE)"
        )
    if not files or not files[0] or not _same_file(files[0], path):
        raise UnusableConnection(
            f"connection= is to {files[0] if files and files[0] else 'no file'!r}, not to "
            f"the store's {location}; nothing was written. Append on a connection to "
            "the store's file"
        )
    return connection


def plain_cursor(db: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor of ``db`` that returns plain tuples, whatever the connection's row factory."""
    cursor = db.cursor()
    cursor.row_factory = None
    return cursor


def undo(db: sqlite3.Connection, savepoint: bool) -> None:
    """Roll back what an append wrote: its transaction, or (in the caller's) its savepoint."""
    if not db.in_transaction:  # SQLite ended it already (the error rolled it back)
        return
    if not savepoint:
        db.rollback()
        return
    with contextlib.suppress(sqlite3.OperationalError):  # the savepoint is gone with it
        db.execute(ROLLBACK_TO)
        db.execute(RELEASE)


def _same_file(path: str, other: str) -> bool:
    """Whether two paths name one file (links and relative paths alike)."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False
