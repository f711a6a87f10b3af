"""Projection (and inbox) checkpoints of the SQLite backend: tables in the store's file, beside
the read model.

A runner has its own connection to the file: each batch of events is applied and the
checkpoint moved in one ``BEGIN IMMEDIATE`` transaction, so an event's effect on the read
model happens exactly once whenever the process dies. A lock file beside the database keeps
each projection to one runner. The tables (``facta_projections``, ``facta_dead_letters``,
and the inboxes' ``facta_inbox_streams`` and ``facta_inbox_held``) come from the store's
migrations. The async runner calls handlers on the event loop's thread
(SQLite calls are short); the store's own calls still run in its worker thread.
"""

from __future__ import annotations

import asyncio  # sync: drop
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from facta.backends.sqlite.database import MEMORY, busy, connect, describe
from facta.backends.sqlite.locks import FileLock
from facta.errors import ConfigurationError, ProjectionLocked, StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.recorder_async import AsyncCheckpoints
from facta.records import DeadLetter, HeldMessage, InboxStream, ProjectionStatus, shown_state

__all__ = ["AsyncSQLiteCheckpoints", "statuses"]

T = TypeVar("T")

_HELD_COLUMNS = "stream_id, version, event_id, subject, headers, data, error, held_at"
_CHUNK = 500  # stream ids per query: far below SQLite's limit on parameters


class AsyncSQLiteCheckpoints(AsyncCheckpoints):
    """One projection's row in ``facta_projections``, on a connection of its own.

    ``timeout`` and ``synchronous`` are the store's options: the runner's commits wait for
    other writers, and reach the disk, as the store's do.
    """

    def __init__(
        self,
        name: str,
        path: str,
        timeout: float,
        synchronous: str = "FULL",
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(name)
        if path == MEMORY:
            raise ConfigurationError(
                f"projection {name!r}: a SQLite ':memory:' store is private to its connection, "
                "so a projection runner cannot share it; use a file (or the memory:// store)"
            )
        self.path, self._timeout, self._read_only = path, timeout, read_only
        self._synchronous = synchronous
        self._where = describe(path)
        self._lock = _file_lock(path, name)
        self._db: sqlite3.Connection | None = None

    async def open(self, wait: bool, poll_interval: float) -> None:
        if self._read_only:
            raise StoreError(
                f"projection {self.name!r}: {self._where} was opened read-only, and a runner "
                "writes its checkpoint there; open the store without read_only"
            )
        while not self._lock.acquire():
            if not wait:
                raise ProjectionLocked(self.name, f"its lock file {self._lock.path} is held")
            await asyncio.sleep(poll_interval)
        try:
            self._db = _call(
                self._where, connect, self.path, self._timeout, self._synchronous, "rw"
            )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
        self._lock.release()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"projection {self.name!r}: its checkpoints are not open")
        return self._db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        db = self._connection()
        await self._begin(db)
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        try:
            _call(self._where, db.execute, "COMMIT")
        finally:
            if db.in_transaction:
                db.rollback()

    async def _begin(self, db: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting for another writer without holding up the event loop
        (in the async runner): the writer may be the store's own transaction, in another task
        of the same loop, which must be able to finish meanwhile."""
        deadline = time.monotonic() + self._timeout
        _call(self._where, db.execute, "PRAGMA busy_timeout = 0")  # ask, never block
        try:
            while True:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if not busy(e) or time.monotonic() >= deadline:
                        raise StoreError(f"projections in {self._where}: {e}") from e
                await asyncio.sleep(_BUSY_POLL)  # sync: time.sleep(_BUSY_POLL)
        finally:
            busy_ms = int(self._timeout * 1000)
            _call(self._where, db.execute, f"PRAGMA busy_timeout = {busy_ms}")

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        return _call(self._where, lambda: self._connection().execute(sql, params).rowcount)

    async def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        self._write(
            "INSERT INTO facta_projections VALUES (?, 0, 0, ?, ?, NULL, ?) ON CONFLICT (name)"
            " DO UPDATE SET state = excluded.state, types = excluded.types, error = NULL,"
            " updated_at = excluded.updated_at",
            (self.name, state, msgspec.json.encode(types).decode(), time.time()),
        )
        row = _call(
            self._where,
            lambda: (
                self._connection()
                .execute(
                    "SELECT transaction_id, position FROM facta_projections WHERE name = ?",
                    (self.name,),
                )
                .fetchone()
            ),
        )
        return Checkpoint(*row)

    async def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        moved = self._write(
            "UPDATE facta_projections SET transaction_id = ?, position = ?, updated_at = ?"
            " WHERE name = ? AND transaction_id = ? AND position = ?",
            (*after, time.time(), self.name, *before),
        )
        if moved != 1:
            raise StoreError(
                f"projection {self.name!r}: its checkpoint is no longer {before}; another runner "
                "moved it (was its lock file deleted?); nothing of this batch was kept"
            )

    async def reset(self, connection: Any) -> None:
        self._write(
            "UPDATE facta_projections SET transaction_id = 0, position = 0, updated_at = ?"
            " WHERE name = ?",
            (time.time(), self.name),
        )
        self._write("DELETE FROM facta_dead_letters WHERE projection = ?", (self.name,))

    async def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO facta_dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    async def dead_letters(self) -> list[DeadLetter]:
        rows = _call(
            self._where,
            lambda: (
                self._connection()
                .execute(
                    "SELECT stream_id, version, position, transaction_id, event_id, type, error,"
                    " failed_at FROM facta_dead_letters WHERE projection = ?"
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

    async def finish(self, state: str, error: str | None = None) -> None:
        self._write(
            "UPDATE facta_projections SET state = ?, error = ?, updated_at = ? WHERE name = ?",
            (state, error, time.time(), self.name),
        )

    async def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        return _call(self._where, _lag, self._connection(), after, types)

    # -- inboxes ---------------------------------------------------------------------------

    async def inbox_streams(
        self, connection: Any, stream_ids: Collection[str]
    ) -> dict[str, InboxStream]:
        db, ids = self._connection(), list(stream_ids)
        found: dict[str, InboxStream] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = _call(
                self._where,
                lambda chunk=chunk: db.execute(
                    "SELECT stream_id, version, event_id, marker FROM facta_inbox_streams"
                    f" WHERE inbox = ? AND stream_id IN ({', '.join('?' * len(chunk))})",
                    (self.name, *chunk),
                ).fetchall(),
            )
            for stream_id, version, event_id, marker in rows:
                found[stream_id] = InboxStream(
                    stream_id, version, uuid.UUID(bytes=event_id), marker
                )
        return found

    async def save_inbox_streams(self, connection: Any, streams: Sequence[InboxStream]) -> None:
        db, now = self._connection(), time.time()
        _call(
            self._where,
            db.executemany,
            "INSERT INTO facta_inbox_streams VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (inbox, stream_id) DO UPDATE SET version = excluded.version,"
            " event_id = excluded.event_id, updated_at = excluded.updated_at,"
            " marker = excluded.marker",
            [(self.name, s.stream_id, s.version, s.event_id.bytes, now, s.marker) for s in streams],
        )
        _call(
            self._where,
            db.executemany,
            "DELETE FROM facta_inbox_held WHERE inbox = ? AND stream_id = ? AND version <= ?"
            " AND error IS NULL",
            [(self.name, s.stream_id, s.version) for s in streams],
        )

    async def hold(self, connection: Any, message: HeldMessage) -> None:
        self._write(
            f"INSERT INTO facta_inbox_held (inbox, {_HELD_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.name,
                message.stream_id,
                message.version,
                message.event_id,
                message.subject,
                msgspec.json.encode(message.headers).decode(),
                message.data,
                message.error,
                message.held_at.timestamp(),
            ),
        )

    async def parked(self, connection: Any, stream_id: str) -> list[HeldMessage]:
        db = self._connection()
        rows = _call(
            self._where,
            lambda: db.execute(
                f"SELECT {_HELD_COLUMNS} FROM facta_inbox_held WHERE inbox = ? AND stream_id = ?"
                " AND error IS NULL ORDER BY version",
                (self.name, stream_id),
            ).fetchall(),
        )
        return [_held(row) for row in rows]

    async def held(self) -> list[HeldMessage]:
        query = f"SELECT {_HELD_COLUMNS} FROM facta_inbox_held WHERE inbox = ? ORDER BY id"
        if self._db is not None:
            return _call(self._where, _all_held, self._db, query, self.name)
        # Not open (a status of a running inbox): a read-only connection of its own.
        db = _call(self._where, connect, self.path, self._timeout, self._synchronous, "ro")
        try:
            return _call(self._where, _all_held, db, query, self.name)
        finally:
            db.close()


def _all_held(db: sqlite3.Connection, query: str, name: str) -> list[HeldMessage]:
    return [_held(row) for row in db.execute(query, (name,)).fetchall()]


def _held(row: tuple[Any, ...]) -> HeldMessage:
    stream_id, version, event_id, subject, headers, data, error, held_at = row
    return HeldMessage(
        stream_id,
        version,
        event_id,
        subject,
        msgspec.json.decode(headers, type=dict[str, str]),
        data,
        error,
        datetime.fromtimestamp(held_at, UTC),
    )


def statuses(db: sqlite3.Connection, path: str) -> list[ProjectionStatus]:
    """Every projection with a checkpoint in the store ``db`` (the file at ``path``) holds."""
    rows = db.execute(
        "SELECT name, transaction_id, position, types, state, error, (SELECT count(*) FROM"
        " facta_dead_letters d WHERE d.projection = p.name) FROM facta_projections p"
        " ORDER BY name"
    ).fetchall()
    result = []
    for name, transaction_id, position, types, state, error, parked in rows:
        checkpoint = Checkpoint(transaction_id, position)
        lag = _lag(db, checkpoint, msgspec.json.decode(types, type=tuple[str, ...]))
        held = path != MEMORY and _file_lock(path, name).held_elsewhere()
        shown = shown_state(state, held)
        result.append(ProjectionStatus(name, checkpoint, lag, shown, error, parked))
    return result


def _file_lock(path: str, name: str) -> FileLock:
    return FileLock(f"{path}-projection-{name}.lock")


# How often a runner asks again for the write lock another connection holds.
_BUSY_POLL = 0.005


def _call(where: str, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, with SQLite's errors turned into ``StoreError``."""
    try:
        return function(*args)
    except sqlite3.Error as e:
        raise StoreError(f"projections in {where}: {e}") from e


def _lag(db: sqlite3.Connection, after: Checkpoint, types: tuple[str, ...]) -> int:
    if not types:
        return 0
    marks = ", ".join("?" * len(types))
    count: int = db.execute(
        f"SELECT count(*) FROM facta_events WHERE position > ? AND type IN ({marks})",
        (after.position, *types),
    ).fetchone()[0]
    return count
