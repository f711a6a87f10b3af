"""The SQLite recorder: the embedded default, one file in WAL mode.

SQLite has one writer at a time, so insertion order is commit order and the global log is
simply ordered by position (every ``transaction_id`` is 0). The store's one connection is used
under a lock; the async recorder reads on the event loop's thread when the connection is free
and writes in a worker thread of its own (see :mod:`facta.backends.sqlite.threads`). Appends
that queue for the connection meanwhile are committed together, with one sync of the disk
(see :mod:`facta.backends.sqlite.group_commit`).
"""

from __future__ import annotations

import asyncio  # sync: drop
import contextlib
import sqlite3
import threading
import time
import uuid
from asyncio import to_thread  # sync: drop
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from facta.appending import (
    AppendResult,
    EncodedEvent,
    ExpectedVersion,
    PreparedAppend,
    check_aggregate_type,
    check_expected,
    duplicate_event_id,
)
from facta.backends.sqlite import database
from facta.backends.sqlite.callers import (
    RELEASE,
    ROLLBACK_TO,
    SAVEPOINT,
    WRITE_LOCK,
    joinable,
    plain_cursor,
    undo,
)
from facta.backends.sqlite.checkpoints_async import AsyncSQLiteCheckpoints, statuses
from facta.backends.sqlite.database import busy, describe, open_store
from facta.backends.sqlite.group_commit import AppendQueue, Queued
from facta.backends.sqlite.keys_async import AsyncSQLiteKeyTable
from facta.backends.sqlite.threads import (  # sync: drop
    WorkerThread,  # sync: drop
    read_here,  # sync: drop
    run_to_the_end,  # sync: drop
)  # sync: drop
from facta.errors import (
    FactaError,
    InvalidEvent,
    SchemaVersionError,
    StoreError,
    TransactionConflict,
)
from facta.events import Checkpoint
from facta.ids import uuid_from_bytes
from facta.lifecycle import (
    check_deletable,
    check_load,
    check_open,
    check_reopenable,
    check_truncation,
    next_marker_version,
)
from facta.recorder_async import AsyncRecorder
from facta.records import (
    EventPlace,
    ProjectionStatus,
    ReplayRow,
    StoredEvent,
    StreamInfo,
    StreamVersion,
)
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotRecord

__all__ = ["AsyncSQLiteRecorder"]

T = TypeVar("T")
# What runs a statement: the store's connection, or a plain cursor of the caller's.
_Executor = sqlite3.Connection | sqlite3.Cursor

_COLUMNS = "stream_id, version, position, event_id, type, schema_version, encoding, data, metadata, recorded_at"
_INSERT = (
    "INSERT INTO facta_events (stream_id, version, event_id, type, schema_version, encoding,"
    " data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A stream's newest event's version (markers have negative versions) and its row in
# facta_streams, if it has one (see _info), in one statement: every append reads them.
_STREAM = (
    "SELECT (SELECT coalesce(max(version), 0) FROM facta_events WHERE stream_id = ?1"
    " AND version > 0), s.stream_id IS NOT NULL, s.aggregate_type, s.deleted_at,"
    " s.hard_deleted, s.version, s.first_version, s.max_age, s.max_count"
    " FROM (SELECT 1) LEFT JOIN facta_streams AS s ON s.stream_id = ?1"
)
_RECORD_TYPE = "INSERT INTO facta_streams (stream_id, aggregate_type) VALUES (?, ?)"
_LOWEST_MARKER = "SELECT min(version) FROM facta_events WHERE stream_id = ? AND version < 0"
# Lifecycle changes to a stream's row (made if missing): ? = the stream id, then the values.
_KEEP_ROW = "INSERT OR IGNORE INTO facta_streams (stream_id) VALUES (?)"
_SOFT_DELETE = "UPDATE facta_streams SET deleted_at = ? WHERE stream_id = ?"
_HARD_DELETE = (
    "UPDATE facta_streams SET deleted_at = ?, hard_deleted = 1, version = ? WHERE stream_id = ?"
)
_REOPEN = "UPDATE facta_streams SET deleted_at = NULL WHERE stream_id = ?"
_TRUNCATE = "UPDATE facta_streams SET first_version = ? WHERE stream_id = ?"
_RETAIN = "UPDATE facta_streams SET max_age = ?, max_count = ? WHERE stream_id = ?"
_RETAINED = (
    "SELECT stream_id FROM facta_streams WHERE stream_id > ?"
    " AND (max_age IS NOT NULL OR max_count IS NOT NULL) ORDER BY stream_id LIMIT ?"
)
_READ_STREAM = (
    f"SELECT {_COLUMNS} FROM facta_events WHERE stream_id = ? AND version >= ?"
    " AND version <= ? ORDER BY version LIMIT ?"
)
_REPLAY = (
    "SELECT version, type, schema_version, encoding, data FROM facta_events"
    " WHERE stream_id = ? AND version >= ? AND version <= ? ORDER BY version LIMIT ?"
)
_LOCATE = "SELECT stream_id, version, position FROM facta_events WHERE event_id = ?"
_STREAMS = (
    "SELECT stream_id, max(version) FROM facta_events WHERE stream_id > ? AND version > 0"
    " GROUP BY stream_id ORDER BY stream_id LIMIT ?"
)
_WRITE_SNAPSHOT = "INSERT OR REPLACE INTO facta_snapshots VALUES (?, ?, ?, ?, ?, ?, ?)"
_PRUNE_SNAPSHOTS = (
    "DELETE FROM facta_snapshots WHERE stream_id = ? AND version < (SELECT version FROM"
    " facta_snapshots WHERE stream_id = ? ORDER BY version DESC LIMIT 1"
    f" OFFSET {SNAPSHOT_CANDIDATES - 1})"
)
_READ_SNAPSHOTS = (
    "SELECT stream_id, version, aggregate_type, schema_version, encoding, checksum, state"
    " FROM facta_snapshots WHERE stream_id = ? ORDER BY version DESC LIMIT ?"
)
_LAST_VERSION = 2**62  # "no upper bound" in a version range
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # SQLite's codes for a damaged file


# How often wait_for_events looks at the data version: the latency of a wake-up.
_WATCH_INTERVAL = 0.005


class AsyncSQLiteRecorder(AsyncRecorder):
    """Records into one SQLite file (``":memory:"`` for a private in-memory database).

    ``facta.connect_async("sqlite:///file.db")`` makes one (see :mod:`facta.backends.sqlite`
    for the options).
    """

    sync_transactions = True

    def __init__(
        self,
        path: str,
        *,
        timeout: float = 30.0,
        synchronous: str = "FULL",
        migrate: bool = True,
        create: bool = True,
        read_only: bool = False,
        url: str | None = None,
    ) -> None:
        self.path = path
        self.url = f"sqlite:///{path}" if url is None else url
        self.location = describe(path)
        self.read_only = read_only
        self._timeout, self._synchronous, self._create = timeout, synchronous, create
        # Why the store cannot be used until migrate() (opened with migrate=False), or None.
        self._db, self._pending = open_store(
            path,
            self.url,
            timeout=timeout,
            synchronous=synchronous,
            migrate=migrate,
            create=create,
            read_only=read_only,
        )
        # Held for each call, and from BEGIN to COMMIT of a transaction() (in the sync recorder
        # re-entrant, so that a call inside one fails instead of waiting for ever).
        self._lock = threading.Lock()  # sync: self._lock = threading.RLock()
        # wait_for_events: a connection of its own, whose data_version moves with every commit
        # of any other connection, and the value it had when a wait last returned.
        self._watcher: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self._seen_version: int | None = None
        self._queue = AppendQueue()  # appends waiting for the connection
        self._writer = WorkerThread(f"facta {self.location}")  # sync: drop

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """A call that may wait for a write lock or the disk (the async recorder makes it in
        its worker thread)."""
        written: T = await self._writer.run(self._locked, fn, *args)  # sync: drop
        return written  # sync: return self._locked(fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """A read (the async recorder makes it on the loop's thread when the connection is
        free, else off the loop after the call or transaction that holds it)."""
        read: T = await read_here(self._lock, self._call, self._run, fn, *args)  # sync: drop
        return read  # sync: return self._locked(fn, *args)

    def _locked(self, function: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return self._call(function, *args)

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the connection, which the caller holds the lock of."""
        if self._pending is not None:
            raise SchemaVersionError(self._pending)
        try:
            return function(*args)
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.rollback()
            raise StoreError(f"{self.location}: {e}") from e

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.location} was opened read-only; nothing was written")

    def _waited(self, error: sqlite3.Error, doing: str, lost: str) -> StoreError:
        """The error for a write that waited longer than ``timeout`` for another writer."""
        return StoreError(
            f"{self.location}: {doing} waited more than timeout={self._timeout:g}s for another "
            f"connection's write lock ({error}); {lost}. Another process or thread held a write "
            "transaction all that time: keep write transactions short, or raise timeout"
        )

    # -- writing ---------------------------------------------------------------------------

    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        self._check_writable()
        queued = self._queue.add(appends)
        try:
            return await self._run(self._write_queued, queued)
        finally:
            self._queue.withdraw(queued)

    def _write_queued(self, mine: Queued) -> list[AppendResult]:
        """Write the queued appends, ``mine`` among them, unless a group has taken it (see
        :mod:`facta.backends.sqlite.group_commit`); ``mine``'s results."""
        if not mine.taken:
            # In the sync store's transaction() (its lock is re-entrant) only mine is
            # written: it fails there, and must not take the others with it.
            group = self._queue.take(mine, everyone=not self._db.in_transaction)
            if len(group) > 1:
                self._write_group(group)
        if mine.results is not None:
            return mine.results
        return self._write(mine.appends)  # alone: in no group, or it failed in one

    def _write_group(self, group: list[Queued]) -> None:
        """Write the group's appends in one transaction, each under a savepoint; those
        committed get their results, the others are left to their callers."""
        db = self._db
        written: list[tuple[Queued, list[AppendResult]]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return  # each caller meets the error alone, as it would have
        try:
            for queued in group:
                db.execute(SAVEPOINT)
                try:
                    results = queued.context.run(self._append_rows, queued.appends, db, db)
                except Exception:
                    if not db.in_transaction:  # SQLite ended it: the group is lost
                        return
                    db.execute(ROLLBACK_TO)
                else:
                    written.append((queued, results))
                db.execute(RELEASE)
            db.execute("COMMIT")
        except sqlite3.Error:
            return  # every caller writes alone
        finally:
            if db.in_transaction:
                db.rollback()
        for queued, results in written:
            queued.results = results

    async def append_in_transaction(
        self, connection: object, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        """:meth:`append` on the caller's ``sqlite3.Connection`` to the store's file, in the
        transaction open on it.

        Runs on the calling thread (a sqlite3 connection belongs to the thread that made
        it), under a savepoint: released on success, rolled back when the append raises, so
        the transaction stays usable; facta never commits. Begin the transaction with
        ``BEGIN IMMEDIATE``: one begun as a reader cannot write once another connection
        has (``TransactionConflict``).
        """
        self._check_writable()
        db = joinable(connection, self.path, self.location)
        if self._pending is not None:
            raise SchemaVersionError(self._pending)
        try:
            return self._write(appends, db)
        except sqlite3.Error as e:
            raise StoreError(f"{self.location}: {e}; nothing was written") from e

    def _write(
        self, appends: Sequence[PreparedAppend], caller: sqlite3.Connection | None = None
    ) -> list[AppendResult]:
        """Append on the store's connection in a transaction of its own, or on the caller's
        connection under a savepoint in the caller's transaction."""
        db = self._db if caller is None else caller
        run = db if caller is None else plain_cursor(caller)
        try:
            run.execute("BEGIN IMMEDIATE" if caller is None else SAVEPOINT)
            if caller is not None:  # write first: what the append reads is then current
                run.execute(WRITE_LOCK)
            results = self._append_rows(appends, run, db)
            run.execute("COMMIT" if caller is None else RELEASE)
            return results
        except sqlite3.IntegrityError as e:
            undo(db, caller is not None)
            if "event_id" not in str(e):
                raise
            ids = [event.event_id for append in appends for event in append.events]
            raise duplicate_event_id(appends, self._find(ids, run)) from None
        except BaseException as e:
            undo(db, caller is not None)
            if isinstance(e, sqlite3.OperationalError) and busy(e):
                doing = f"appending to {_names([a.stream_id for a in appends])}"
                if caller is None:
                    raise self._waited(e, doing, "nothing was written") from e
                raise self._caller_waited(e, appends) from e
            raise

    def _append_rows(
        self, appends: Sequence[PreparedAppend], run: _Executor, db: sqlite3.Connection
    ) -> list[AppendResult]:
        """Write the appends' rows in the open transaction (``run`` executes on ``db``) and
        call the inline projections with them; the results."""
        now = datetime.now(UTC).timestamp()
        results = []
        for append in appends:
            stream_id, given = append.stream_id, append.aggregate_type
            info = self._info(stream_id, run)
            check_open(info)
            if info is not None:
                check_aggregate_type(stream_id, info.aggregate_type, given)
            actual = 0 if info is None else info.version
            check_expected(stream_id, append.expected_version, actual)
            if not append.events:
                results.append(AppendResult(stream_id, actual, 0))
                continue
            if actual == 0 and given is not None:
                run.execute(_RECORD_TYPE, (stream_id, given))
            run.executemany(
                _INSERT,
                [
                    (
                        append.stream_id,
                        actual + offset,
                        e.event_id.bytes,
                        e.type,
                        e.schema_version,
                        e.encoding,
                        e.data,
                        e.metadata,
                        now,
                    )
                    for offset, e in enumerate(append.events, 1)
                ],
            )
            position = run.execute("SELECT last_insert_rowid()").fetchone()[0]
            version = actual + len(append.events)
            results.append(AppendResult(append.stream_id, version, position))
        hook = self.on_append
        if hook is not None:
            written = _written(appends, results, now)
            if written:
                hook.call(db, written)
        return results

    def _caller_waited(
        self, error: sqlite3.OperationalError, appends: Sequence[PreparedAppend]
    ) -> FactaError:
        """The error for an append in the caller's transaction that could not write."""
        names = _names([a.stream_id for a in appends])
        if error.sqlite_errorcode != sqlite3.SQLITE_BUSY_SNAPSHOT:
            return StoreError(
                f"{self.location}: appending to {names} in the caller's transaction waited "
                f"longer than the connection's timeout for another connection's write lock "
                f"({error}); nothing was written. Keep write transactions short, or raise "
                "the timeout of sqlite3.connect"
            )
        append = next((a for a in appends if a.events), appends[0])
        with contextlib.closing(
            database.connect(self.path, self._timeout, self._synchronous, mode="ro")
        ) as reader:
            info = self._info(append.stream_id, reader)
        reason = (
            f"the caller's transaction began as a reader (BEGIN or BEGIN DEFERRED) and "
            f"another connection wrote since it read, so SQLite cannot let it write ({error}). "
            "Begin it with BEGIN IMMEDIATE, and it never meets this"
        )
        return TransactionConflict(
            append.stream_id,
            _stated(append.expected_version),
            0 if info is None else info.version,
            reason if len(appends) == 1 else f"{reason}; appending to {names}",
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        self._check_writable()
        args = (stream_id, expected_version, marker, hard, reuse)
        return await self._run(self._delete, *args)

    def _delete(
        self, stream_id: str, expected: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        with self._changing(stream_id, "deleting") as db:
            version = check_deletable(stream_id, self._info(stream_id), expected)
            row = self._mark(stream_id, marker)
            when = row.recorded_at.timestamp()
            if hard:
                db.execute(
                    "DELETE FROM facta_events WHERE stream_id = ? AND version > 0", (stream_id,)
                )
                db.execute("DELETE FROM facta_snapshots WHERE stream_id = ?", (stream_id,))
            if hard and reuse:
                db.execute("DELETE FROM facta_streams WHERE stream_id = ?", (stream_id,))
            else:
                db.execute(_KEEP_ROW, (stream_id,))
                if hard:
                    db.execute(_HARD_DELETE, (when, version, stream_id))
                else:
                    db.execute(_SOFT_DELETE, (when, stream_id))
        return AppendResult(stream_id, version, row.position)

    async def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        self._check_writable()
        return await self._run(self._reopen, stream_id, marker)

    def _reopen(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        with self._changing(stream_id, "reopening") as db:
            info = check_reopenable(stream_id, self._info(stream_id))
            row = self._mark(stream_id, marker)
            db.execute(_REOPEN, (stream_id,))
        return AppendResult(stream_id, info.version, row.position)

    async def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        self._check_writable()
        args = (stream_id, before, marker)
        return await self._run(self._truncate, *args)

    def _truncate(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        with self._changing(stream_id, "truncating") as db:
            newest = db.execute(
                "SELECT max(version) FROM facta_snapshots WHERE stream_id = ?", (stream_id,)
            ).fetchone()[0]
            if not check_truncation(self._info(stream_id), before, newest):
                return 0
            removed: int = db.execute(
                "DELETE FROM facta_events WHERE stream_id = ? AND version > 0 AND version < ?",
                (stream_id, before),
            ).rowcount
            db.execute(
                "DELETE FROM facta_snapshots WHERE stream_id = ? AND version < ?",
                (stream_id, before - 1),
            )
            db.execute(_KEEP_ROW, (stream_id,))
            db.execute(_TRUNCATE, (before, stream_id))
            self._mark(stream_id, marker)
        return removed

    async def set_retention(
        self, stream_id: str, max_age: float | None, max_count: int | None
    ) -> None:
        self._check_writable()
        args = (stream_id, max_age, max_count)
        await self._run(self._retain, *args)

    def _retain(self, stream_id: str, max_age: float | None, max_count: int | None) -> None:
        with self._changing(stream_id, "setting the retention of") as db:
            if self._info(stream_id) is None:
                raise InvalidEvent(f"stream {stream_id!r} holds no events; no retention was set")
            db.execute(_KEEP_ROW, (stream_id,))
            db.execute(_RETAIN, (max_age, max_count, stream_id))

    async def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        return await self._read(self._retained, "" if after is None else after, limit)

    def _retained(self, after: str, limit: int) -> list[StreamInfo]:
        ids = [row[0] for row in self._db.execute(_RETAINED, (after, limit))]
        return [info for i in ids if (info := self._info(i)) is not None]

    @contextmanager
    def _changing(self, stream_id: str, doing: str) -> Iterator[sqlite3.Connection]:
        """A write transaction, rolled back if the block raises; a wait for another writer
        that times out names what was being done."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                db.rollback()
            if isinstance(e, sqlite3.OperationalError) and busy(e):
                what = f"{doing} stream {stream_id!r}"
                raise self._waited(e, what, "nothing was changed") from e
            raise

    def _mark(self, stream_id: str, marker: EncodedEvent) -> StoredEvent:
        """Write the stream's next marker in the open transaction; the inline projections
        see it before it commits."""
        db = self._db
        version = next_marker_version(db.execute(_LOWEST_MARKER, (stream_id,)).fetchone()[0])
        now = datetime.now(UTC)
        db.execute(
            _INSERT,
            (
                stream_id,
                version,
                marker.event_id.bytes,
                marker.type,
                marker.schema_version,
                marker.encoding,
                marker.data,
                marker.metadata,
                now.timestamp(),
            ),
        )
        position = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        row = StoredEvent(stream_id, version, position, 0, *marker, now)
        if self.on_append is not None:
            self.on_append.call(db, [row])
        return row

    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        return await self._read(self._find, event_ids)

    def _find(
        self, event_ids: Sequence[uuid.UUID], db: _Executor | None = None
    ) -> dict[uuid.UUID, EventPlace]:
        run = self._db if db is None else db
        found = {}
        for event_id in event_ids:
            row = run.execute(_LOCATE, (event_id.bytes,)).fetchone()
            if row is not None:
                found[event_id] = EventPlace(*row)
        return found

    # -- reading ---------------------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        return await self._read(self._stream_version, stream_id)

    def _stream_version(self, stream_id: str) -> int:
        info = self._info(stream_id)
        return 0 if info is None else info.version

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        return await self._read(self._info, stream_id)

    def _info(self, stream_id: str, db: _Executor | None = None) -> StreamInfo | None:
        """The stream's info: its newest event's version, and its row if it has one."""
        run = self._db if db is None else db
        version, has_row, type_name, deleted, hard, hard_version, first, max_age, max_count = (
            run.execute(_STREAM, (stream_id,)).fetchone()
        )
        if not has_row:
            return StreamInfo(stream_id, version) if version else None
        return StreamInfo(
            stream_id,
            hard_version if hard else max(version, first - 1),
            type_name,
            None if deleted is None else datetime.fromtimestamp(deleted, UTC),
            bool(hard),
            first,
            max_age,
            max_count,
        )

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        last = _LAST_VERSION if to_version is None else to_version
        return await self._read(self._select, _READ_STREAM, (stream_id, from_version, last, limit))

    async def replay_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int,
        aggregate_type: str | None = None,
    ) -> list[ReplayRow]:
        last = _LAST_VERSION if to_version is None else to_version
        params = (stream_id, from_version, last, limit)
        if aggregate_type is None:
            return await self._read(self._fetch, _REPLAY, params)
        return await self._read(self._replay_as, params, aggregate_type)

    def _replay_as(self, params: tuple[str, int, int, int], aggregate_type: str) -> list[ReplayRow]:
        """A load's first page, after ``check_load`` found nothing against it."""
        check_load(params[0], self._info(params[0]), aggregate_type, params[1])
        return self._fetch(_REPLAY, params)

    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        params: tuple[object, ...] = (after.position,)
        if types is None:
            where = "position > ?"
        else:
            marks = ", ".join("?" * len(types))
            where, params = f"position > ? AND type IN ({marks})", (*params, *types)
        return await self._read(
            self._select,
            f"SELECT {_COLUMNS} FROM facta_events WHERE {where} ORDER BY position LIMIT ?",
            (*params, limit),
        )

    async def last_checkpoint(self) -> Checkpoint:
        ((position,),) = await self._read(self._fetch, "SELECT max(position) FROM facta_events", ())
        return Checkpoint(0, position or 0)

    async def wait_for_events(self, seconds: float) -> bool:
        """Wait until a commit may have happened (True) or ``seconds`` pass (False).

        ``PRAGMA data_version`` on a connection of the recorder's own changes with every
        commit of any other connection, this process's or another's; it is polled every few
        milliseconds. The first call returns True at once, and so does a call after a commit
        that came since the last call returned. A ``:memory:`` database has no other
        connection to watch: it waits ``seconds``.
        """
        if self.path == database.MEMORY:
            return await super().wait_for_events(seconds)
        deadline = time.monotonic() + seconds
        while True:
            version = self._data_version()
            if version != self._seen_version:
                self._seen_version = version
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_WATCH_INTERVAL)  # sync: time.sleep(_WATCH_INTERVAL)

    def _data_version(self) -> int:
        with self._watch_lock:
            try:
                if self._watcher is None:
                    self._watcher = database.connect(
                        self.path, self._timeout, self._synchronous, mode="ro"
                    )
                version: int = self._watcher.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as e:
                raise StoreError(f"{self.location}: watching for commits failed: {e}") from e
            return version

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        # tuple.__new__ makes the StoredEvent without the call of its generated __new__:
        # reads build one per event, and this halves what that costs.
        new, row = tuple.__new__, StoredEvent
        to_uuid, to_datetime = uuid_from_bytes, datetime.fromtimestamp
        return [
            new(row, (s, v, p, 0, to_uuid(i), t, sv, enc, d, m, to_datetime(at, UTC)))
            for s, v, p, i, t, sv, enc, d, m, at in self._db.execute(sql, params)
        ]

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    async def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        rows = await self._read(self._fetch, _STREAMS, ("" if after is None else after, limit))
        return [StreamVersion(stream_id, version) for stream_id, version in rows]

    # -- snapshots -------------------------------------------------------------------------

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._check_writable()
        await self._run(self._write_snapshot, snapshot)

    def _write_snapshot(self, snapshot: SnapshotRecord) -> None:
        try:
            with self._db:  # one transaction: the new snapshot in, the oldest ones out
                self._db.execute(_WRITE_SNAPSHOT, snapshot)
                self._db.execute(_PRUNE_SNAPSHOTS, (snapshot.stream_id, snapshot.stream_id))
        except sqlite3.OperationalError as e:
            if not busy(e):
                raise
            doing = f"writing a snapshot of stream {snapshot.stream_id!r}"
            raise self._waited(e, doing, "it was not written") from e

    async def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        rows = await self._read(self._fetch, _READ_SNAPSHOTS, (stream_id, limit))
        return [SnapshotRecord(*row) for row in rows]

    # -- projections -----------------------------------------------------------------------

    def checkpoints(self, name: str) -> AsyncSQLiteCheckpoints:
        if self._pending is not None:
            raise SchemaVersionError(self._pending)
        return AsyncSQLiteCheckpoints(
            name, self.path, self._timeout, self._synchronous, read_only=self.read_only
        )

    async def projection_statuses(self) -> list[ProjectionStatus]:
        return await self._read(statuses, self._db, self.path)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` on the store's connection, which it yields.

        The store is locked until the transaction ends: use only the connection inside it,
        not the store (its calls would wait for the transaction's end, in the async store).
        """
        self._check_writable()
        await run_to_the_end(self._begin, undo=self._rollback)  # sync: self._begin()
        try:
            yield self._db
        except BaseException:
            await run_to_the_end(self._end, False)  # sync: self._end(False)
            raise
        await run_to_the_end(self._end, True)  # sync: self._end(True)

    def _begin(self) -> None:
        self._lock.acquire()
        try:
            if self._pending is not None:
                raise SchemaVersionError(self._pending)
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException as e:
            self._lock.release()
            if isinstance(e, sqlite3.Error) and busy(e):
                raise self._waited(e, "beginning a transaction", "it did not begin") from e
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"{self.location}: {e}") from e
            raise

    def _rollback(self) -> None:
        self._end(False)

    def _end(self, commit: bool) -> None:
        db = self._db
        try:
            if commit:
                db.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"{self.location}: {e}; nothing of the transaction was kept") from e
        finally:
            if db.in_transaction:
                db.rollback()
            self._lock.release()

    def key_table(self) -> AsyncSQLiteKeyTable:
        return AsyncSQLiteKeyTable(self._run, lambda: self._db, self._check_writable)

    # -- lifecycle -------------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        if self.read_only:  # opening checked that the schema is the latest
            return []
        return await to_thread(self._migrate)  # sync: return self._migrate()

    def _migrate(self) -> list[int]:
        with self._lock:
            try:
                applied = database.apply(
                    self._db, self.path, self.location, self._timeout, create=self._create
                )
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.rollback()
                raise StoreError(f"migrating {self.location} failed: {e}") from e
            self._pending = None
            return applied

    async def check_integrity(self) -> list[str]:
        """What SQLite's ``PRAGMA integrity_check`` finds wrong in the file ([] when sound)."""
        return await to_thread(self._integrity)  # sync: return self._integrity()

    def _integrity(self) -> list[str]:
        with self._lock:
            try:
                rows = self._db.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.Error as e:
                if (e.sqlite_errorcode or 0) & 0xFF in _DAMAGED:  # where the check must read
                    return [str(e)]
                raise StoreError(f"{self.location}: checking its integrity failed: {e}") from e
        problems = [str(problem) for (problem,) in rows]
        return [] if problems == ["ok"] else problems

    async def close(self) -> None:
        await to_thread(self._close)  # sync: self._close()

    def _close(self) -> None:
        self._writer.stop()  # sync: drop
        with self._lock:
            self._db.close()
        with self._watch_lock:
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None


def _stated(expected: int) -> int:
    """An expected version as an append stated it (``ExpectedVersion.ANY``, or a number)."""
    return ExpectedVersion(expected) if expected <= 0 else expected


def _names(stream_ids: Sequence[str]) -> str:
    """``stream 'a'`` or ``streams 'a', 'b', 'c' and 2 more``: for messages."""
    unique = list(dict.fromkeys(stream_ids))
    shown = ", ".join(map(repr, unique[:3]))
    more = f" and {len(unique) - 3} more" if len(unique) > 3 else ""
    return f"stream{'s' if len(unique) > 1 else ''} {shown}{more}"


def _written(
    appends: Sequence[PreparedAppend], results: list[AppendResult], now: float
) -> list[StoredEvent]:
    """The rows an append wrote, as read_all returns them: what the on_append hook gets."""
    at = datetime.fromtimestamp(now, UTC)
    rows = []
    for append, result in zip(appends, results, strict=True):
        for offset, e in enumerate(append.events, 1 - len(append.events)):
            rows.append(
                StoredEvent(
                    append.stream_id,
                    result.version + offset,
                    result.position + offset,
                    0,
                    e.event_id,
                    e.type,
                    e.schema_version,
                    e.encoding,
                    e.data,
                    e.metadata,
                    at,
                )
            )
    return rows
