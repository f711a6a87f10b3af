"""Opening a SQLite file for facta: the store's connection, and a projection runner's.

Opening only reads, unless a migration is pending and allowed: it never waits for another
connection's write lock, so a store opens (and reads) while another process holds a long
write transaction. A store opened ``read_only`` reads the file through SQLite's ``mode=ro``,
so nothing can be written to it or created; one opened with ``create=False`` (``mode=rw``)
never creates the file. Either way a file that holds no facta store is left as it was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from facta.backends.sqlite import schema
from facta.errors import NotAFactaStore, SchemaVersionError, StoreError

__all__ = ["MEMORY", "apply", "busy", "connect", "describe", "open_store"]

MEMORY = ":memory:"

# The errors of a WAL file whose -shm cannot be made or written (a read-only folder).
_NO_SHM = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY)


def describe(path: str) -> str:
    """The file, as messages name it."""
    return "a SQLite ':memory:' database" if path == MEMORY else f"SQLite file {path!r}"


def busy(error: sqlite3.Error) -> bool:
    """Whether ``error`` is SQLite's "database is locked": another connection's lock."""
    return (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_BUSY


def connect(
    path: str, timeout: float, synchronous: str, mode: str | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode (facta begins its own transactions).

    ``mode`` is SQLite's URI mode: ``"ro"`` (read only) or ``"rw"`` (never creates the file);
    None opens the file, creating it if missing. ``synchronous`` is how commits reach the
    disk (see the backend's ``synchronous`` option).
    """
    target, uri = path, False
    if mode is not None and path != MEMORY:
        target, uri = f"{Path(path).absolute().as_uri()}?mode={mode}", True
    db = sqlite3.connect(
        target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
    )
    if mode != "ro":  # a read-only connection commits nothing
        db.execute(f"PRAGMA synchronous = {synchronous}")  # per connection, takes no lock
        # Deleted rows are overwritten with zeros: a forgotten subject's data key, or a
        # rebuilt read model's rows of it, leave no bytes behind (facta.personal).
        db.execute("PRAGMA secure_delete = ON")
    return db


def open_store(
    path: str,
    url: str,
    *,
    timeout: float,
    synchronous: str,
    migrate: bool,
    create: bool,
    read_only: bool,
) -> tuple[sqlite3.Connection, str | None]:
    """The store's connection, its schema checked (and migrated as allowed), and why it cannot
    be used until ``recorder.migrate()`` (None when it can).

    Raises ``NotAFactaStore`` (nothing created or changed) when ``create`` is false and the
    file is missing or holds no facta store, ``SchemaVersionError`` when its schema is newer
    than this facta, or older and the store is ``read_only``. With ``migrate`` false nothing
    is applied: a file holding no store yet, or an outdated one, opens, and the reason comes
    back instead.
    """
    location = describe(path)
    if read_only:
        create = migrate = False
    if not create and (path == MEMORY or not os.path.exists(path)):
        if path == MEMORY:
            why, how = "a new in-memory database is empty", "connect with create=True"
        else:
            why, how = "no such file", f"run `facta migrate {url}` or connect with create=True"
        raise NotAFactaStore(
            f"{location} is not a facta store ({why}); nothing was created (check the URL "
            f"{url!r}; to create a store there, {how})"
        )
    mode = "ro" if read_only else None if create else "rw"
    try:
        db = connect(path, timeout, synchronous, mode)
    except sqlite3.Error as e:
        raise _cannot_open(location, url, e) from e
    try:
        try:
            found = schema.survey(db, location)
        except sqlite3.OperationalError as e:
            if not read_only or e.sqlite_errorcode & 0xFF not in _NO_SHM:
                raise
            db.close()  # its folder is read-only: no -shm can be made for a WAL file
            db = _immutable(path, location, e)
            found = schema.survey(db, location)
        pending = schema.pending(found, location, url, create=create)
        if pending is None:
            if not read_only:
                _use_wal(db, path, timeout, wait=False)
        elif migrate:
            apply(db, path, location, timeout, create=create)
        elif read_only:
            raise SchemaVersionError(f"{pending}; run `facta migrate {url}`")
        else:
            return db, f"{pending}; run `facta migrate {url}`, or connect with migrate=True"
    except sqlite3.Error as e:
        db.close()
        raise _cannot_open(location, url, e) from e
    except BaseException:
        db.close()
        raise
    return db, None


def apply(
    db: sqlite3.Connection, path: str, location: str, timeout: float, *, create: bool
) -> list[int]:
    """Apply the pending migrations (in WAL mode, under ``BEGIN IMMEDIATE``); their numbers."""
    _use_wal(db, path, timeout, wait=True)
    return schema.apply(db, location, create=create)


def _use_wal(db: sqlite3.Connection, path: str, timeout: float, *, wait: bool) -> None:
    """Put the file in WAL mode (which the file keeps), unless it is in it already.

    Switching takes the file's exclusive lock. When a migration is pending it waits up to
    ``timeout`` for it; otherwise it tries once and leaves the switch to a later opening,
    so that opening a store never waits for another connection's lock.
    """
    if path == MEMORY or db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + timeout
    db.execute("PRAGMA busy_timeout = 0")  # SQLite's busy handler does not apply to this switch
    try:
        while True:
            try:
                if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as e:
                if not busy(e):
                    raise
            if not wait:
                return
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{describe(path)}: could not switch it to WAL mode within timeout="
                    f"{timeout:g}s: another connection held it all that time (database is "
                    "locked); nothing was changed. Try again, or raise timeout"
                )
            time.sleep(0.005)
    finally:
        db.execute(f"PRAGMA busy_timeout = {round(timeout * 1000)}")


def _immutable(path: str, location: str, error: sqlite3.Error) -> sqlite3.Connection:
    """A read-only connection to a WAL file in a folder where its ``-shm`` cannot be made.

    SQLite then reads only with ``immutable=1`` (no locks, no look at a ``-wal``), which is
    exact only when no ``-wal`` holds commits: a file closed cleanly has none.
    """
    wal = f"{path}-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise StoreError(
            f"cannot open {location} read-only: {error} (its folder is read-only, so SQLite "
            f"cannot make the {path}-shm file it needs to read the commits in {wal}); open it "
            "where it can be written once, or copy it with its -wal file to a writable folder"
        ) from error
    uri = f"{Path(path).absolute().as_uri()}?mode=ro&immutable=1"
    return sqlite3.connect(uri, isolation_level=None, check_same_thread=False, uri=True)


def _cannot_open(location: str, url: str, error: sqlite3.Error) -> StoreError:
    if error.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
        return NotAFactaStore(
            f"{location} is not a facta store (it is not a SQLite database); nothing was "
            f"created or changed (check the URL {url!r})"
        )
    hint = ""
    if (error.sqlite_errorcode or 0) & 0xFF in _NO_SHM:
        hint = (
            " (SQLite writes a -wal and a -shm file beside it: are the file and its folder "
            "writable? To only read it, connect with read_only=True)"
        )
    return StoreError(f"cannot open {location}: {error}{hint}")
