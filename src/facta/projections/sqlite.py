# WARNING: generated from src/facta/projections/sqlite_async.py by tools/gen_sync.py; do not edit.
"""Projection checkpoints for SQLite: a table in the store's file, beside the read model.

A runner has its own connection to the file: each batch of events is applied and the
checkpoint moved in one ``BEGIN IMMEDIATE`` transaction, so an event's effect on the read
model happens exactly once whenever the process dies. A lock file beside the database keeps
each projection to one runner. The async runner calls handlers on the event loop's thread
(SQLite calls are short); the store's own calls still run in its worker thread.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from facta.backends.sqlite import SQLiteEventStore
from facta.errors import StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.projections.checkpoints import Checkpoints
from facta.projections.errors import ProjectionLocked
from facta.projections.locks import FileLock
from facta.projections.status import DeadLetter, ProjectionStatus, shown_state
from facta.store import EventStore

__all__ = ["SQLiteCheckpoints"]

T = TypeVar("T")

TABLES = (
    """CREATE TABLE IF NOT EXISTS projection_checkpoints (
        name           TEXT    PRIMARY KEY,
        transaction_id INTEGER NOT NULL,
        position       INTEGER NOT NULL,
        state          TEXT    NOT NULL,   -- running, rebuilding, stopped or failed
        types          TEXT    NOT NULL,   -- JSON list of the type names it reads (for its lag)
        error          TEXT,               -- why it failed, if it did
        updated_at     REAL    NOT NULL    -- Unix seconds
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS projection_dead_letters (
        projection     TEXT    NOT NULL,
        transaction_id INTEGER NOT NULL,
        position       INTEGER NOT NULL,
        stream_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        event_id       BLOB    NOT NULL,
        type           TEXT    NOT NULL,
        error          TEXT    NOT NULL,
        failed_at      REAL    NOT NULL,
        PRIMARY KEY (projection, transaction_id, position)
    ) WITHOUT ROWID""",
)


class SQLiteCheckpoints(Checkpoints):
    """Checkpoints in the ``projection_checkpoints`` table of the store's SQLite file."""

    def __init__(self, store: EventStore, name: str) -> None:
        assert isinstance(store, SQLiteEventStore)
        super().__init__(store, name)
        self.path = store.path
        if _in_memory(self.path):
            raise ValueError(
                f"projection {name!r}: a SQLite ':memory:' store is private to its connection, so "
                "a projection runner cannot share it; use a file (or the memory:// store)"
            )
        self._lock = _file_lock(self.path, name)
        self._db: sqlite3.Connection | None = None

    @classmethod
    def statuses(cls, store: EventStore) -> list[ProjectionStatus]:
        assert isinstance(store, SQLiteEventStore)
        if _in_memory(store.path):
            return []
        db = _connect(store.path)
        try:
            rows = _call(store.path, _status_rows, db)
            result = []
            for name, checkpoint, types, state, error in rows:
                lag = _call(store.path, _lag, db, checkpoint, types)
                held = _file_lock(store.path, name).held_elsewhere()
                result.append(
                    ProjectionStatus(name, checkpoint, lag, shown_state(state, held), error)
                )
            return result
        finally:
            db.close()

    def open(self, wait: bool, poll_interval: float) -> None:
        while not self._lock.acquire():
            if not wait:
                raise ProjectionLocked(self.name, f"its lock file {self._lock.path} is held")
            time.sleep(poll_interval)
        try:
            self._db = _connect(self.path)
            with self.transaction() as db:
                for statement in TABLES:
                    db.execute(statement)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
        self._lock.release()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"projection {self.name!r}: its checkpoints are not open")
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        _call(self.path, db.execute, "BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        try:
            _call(self.path, db.execute, "COMMIT")
        finally:
            if db.in_transaction:
                db.rollback()

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        return _call(self.path, lambda: self._connection().execute(sql, params).rowcount)

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        self._write(
            "INSERT INTO projection_checkpoints VALUES (?, 0, 0, ?, ?, NULL, ?) ON CONFLICT (name)"
            " DO UPDATE SET state = excluded.state, types = excluded.types, error = NULL,"
            " updated_at = excluded.updated_at",
            (self.name, state, msgspec.json.encode(types).decode(), time.time()),
        )
        row = _call(
            self.path,
            lambda: (
                self._connection()
                .execute(
                    "SELECT transaction_id, position FROM projection_checkpoints WHERE name = ?",
                    (self.name,),
                )
                .fetchone()
            ),
        )
        return Checkpoint(*row)

    def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        moved = self._write(
            "UPDATE projection_checkpoints SET transaction_id = ?, position = ?, updated_at = ?"
            " WHERE name = ? AND transaction_id = ? AND position = ?",
            (*after, time.time(), self.name, *before),
        )
        if moved != 1:
            raise StoreError(
                f"projection {self.name!r}: its checkpoint is no longer {before}; another runner "
                "moved it (was its lock file deleted?); nothing of this batch was kept"
            )

    def reset(self, connection: Any) -> None:
        self._write(
            "UPDATE projection_checkpoints SET transaction_id = 0, position = 0, updated_at = ?"
            " WHERE name = ?",
            (time.time(), self.name),
        )
        self._write("DELETE FROM projection_dead_letters WHERE projection = ?", (self.name,))

    def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO projection_dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.name,
                event.transaction_id,
                event.position,
                event.stream_id,
                event.version,
                event.event_id.bytes,
                event.type,
                error,
                time.time(),
            ),
        )

    def dead_letters(self) -> list[DeadLetter]:
        rows = _call(
            self.path,
            lambda: (
                self._connection()
                .execute(
                    "SELECT stream_id, version, position, transaction_id, event_id, type, error,"
                    " failed_at FROM projection_dead_letters WHERE projection = ?"
                    " ORDER BY transaction_id, position",
                    (self.name,),
                )
                .fetchall()
            ),
        )
        return [
            DeadLetter(s, v, p, x, uuid.UUID(bytes=i), t, e, datetime.fromtimestamp(at, UTC))
            for s, v, p, x, i, t, e, at in rows
        ]

    def finish(self, state: str, error: str | None = None) -> None:
        self._write(
            "UPDATE projection_checkpoints SET state = ?, error = ?, updated_at = ? WHERE name = ?",
            (state, error, time.time(), self.name),
        )

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        return _call(self.path, _lag, self._connection(), after, list(types))


def _in_memory(path: str) -> bool:
    return path == ":memory:" or path.startswith("file::memory:") or "mode=memory" in path


def _file_lock(path: str, name: str) -> FileLock:
    return FileLock(f"{path}-projection-{name}.lock")


def _connect(path: str) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous = NORMAL")  # as the store: durable in WAL mode
        return db
    except sqlite3.Error as e:
        raise StoreError(f"cannot open SQLite file {path!r} for projections: {e}") from e


def _call(path: str, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, with SQLite's errors turned into ``StoreError``."""
    try:
        return function(*args)
    except sqlite3.Error as e:
        raise StoreError(f"SQLite projections in {path!r}: {e}") from e


def _status_rows(
    db: sqlite3.Connection,
) -> list[tuple[str, Checkpoint, list[str], str, str | None]]:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projection_checkpoints'"
    ).fetchone()
    if exists is None:
        return []
    rows = db.execute(
        "SELECT name, transaction_id, position, types, state, error FROM projection_checkpoints"
        " ORDER BY name"
    )
    return [
        (name, Checkpoint(x, p), msgspec.json.decode(types, type=list[str]), state, error)
        for name, x, p, types, state, error in rows
    ]


def _lag(db: sqlite3.Connection, after: Checkpoint, types: list[str]) -> int:
    if not types:
        return 0
    marks = ", ".join("?" * len(types))
    count: int = db.execute(
        f"SELECT count(*) FROM events WHERE position > ? AND type IN ({marks})",
        (after.position, *types),
    ).fetchone()[0]
    return count
