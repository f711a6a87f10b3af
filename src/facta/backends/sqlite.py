# WARNING: generated from src/facta/backends/sqlite_async.py by tools/gen_sync.py; do not edit.
"""The SQLite event store: the embedded default, a real file in WAL mode.

SQLite has one writer at a time, so insertion order is commit order and the global log is
simply ordered by position. The async store runs each database call in a worker thread.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar

from facta.appending import AppendResult, PreparedAppend, check_expected, duplicate_event_id
from facta.codec import Codec
from facta.errors import SchemaVersionError, StoreError
from facta.events import Checkpoint
from facta.ids import uuid_from_bytes, validate_stream_id
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotRecord
from facta.store import DataRow, EventStore, Row

__all__ = ["SQLiteEventStore"]

T = TypeVar("T")

_COLUMNS = "stream_id, version, position, event_id, type, schema_version, encoding, data, metadata, recorded_at"
_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, schema_version, encoding, data,"
    " metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PRUNE_SNAPSHOTS = (
    "DELETE FROM snapshots WHERE stream_id = ? AND version < (SELECT version FROM snapshots"
    f" WHERE stream_id = ? ORDER BY version DESC LIMIT 1 OFFSET {SNAPSHOT_CANDIDATES - 1})"
)
_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?"


class SQLiteEventStore(EventStore):
    """An event store in one SQLite file (``":memory:"`` for a private in-memory database)."""

    def __init__(self, path: str, codec: Codec | None = None, *, timeout: float = 30.0) -> None:
        super().__init__(codec)
        self.path = path
        try:
            self._db = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode up to a power cut
            _migrate(self._db)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open SQLite event store {path!r}: {e}") from e
        self._lock = threading.Lock()

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._locked(fn, *args)

    def _locked(self, function: Callable[..., T], *args: Any) -> T:
        with self._lock:
            try:
                return function(*args)
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.rollback()
                raise StoreError(f"SQLite event store {self.path!r}: {e}") from e

    def close(self) -> None:
        self._run(self._db.close)

    def run_in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` in one write transaction of the store's connection (read models)."""

        def transaction() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._db)
            except BaseException:
                self._db.rollback()
                raise
            self._db.execute("COMMIT")
            return result

        return self._run(transaction)

    def stream_version(self, stream_id: str) -> int:
        validate_stream_id(stream_id)
        return self._run(self._stream_version, stream_id)

    def _stream_version(self, stream_id: str) -> int:
        version: int = self._db.execute(_VERSION, (stream_id,)).fetchone()[0]
        return version

    def _append(self, appends: list[PreparedAppend]) -> list[AppendResult]:
        return self._run(self._write, appends)

    def _write(self, appends: list[PreparedAppend]) -> list[AppendResult]:
        db = self._db
        now = datetime.now(UTC).timestamp()
        db.execute("BEGIN IMMEDIATE")
        try:
            results = []
            for append in appends:
                actual = self._stream_version(append.stream_id)
                check_expected(append.stream_id, append.expected_version, actual)
                if not append.events:
                    results.append(AppendResult(append.stream_id, actual, 0))
                    continue
                db.executemany(
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
                position = db.execute("SELECT last_insert_rowid()").fetchone()[0]
                version = actual + len(append.events)
                results.append(AppendResult(append.stream_id, version, position))
            if self._inline is not None:
                self._inline.call(db, _written(appends, results, now))
            db.execute("COMMIT")
            return results
        except sqlite3.IntegrityError as e:
            db.rollback()
            if "event_id" not in str(e):
                raise
            ids = [event.event_id for append in appends for event in append.events]
            raise duplicate_event_id(appends, self._find(ids)) from None
        except BaseException:
            db.rollback()
            raise

    def _locate(self, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, int]]:
        return self._run(self._find, event_ids)

    def _find(self, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, int]]:
        found = {}
        for event_id in event_ids:
            row = self._db.execute(
                "SELECT stream_id, version, position FROM events WHERE event_id = ?",
                (event_id.bytes,),
            ).fetchone()
            if row is not None:
                found[event_id] = row
        return found

    def _read_stream_page(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[Row]:
        return self._run(
            self._select,
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version >= ?"
            " AND version <= ? ORDER BY version LIMIT ?",
            (stream_id, from_version, 2**62 if to_version is None else to_version, limit),
        )

    def _read_stream_data_page(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[DataRow]:
        return self._run(
            self._fetch,
            "SELECT version, type, schema_version, encoding, data FROM events WHERE stream_id = ?"
            " AND version >= ? AND version <= ? ORDER BY version LIMIT ?",
            (stream_id, from_version, 2**62 if to_version is None else to_version, limit),
        )

    def _read_all_page(
        self, after: Checkpoint, types: tuple[str, ...] | None, limit: int
    ) -> list[Row]:
        params: tuple[object, ...] = (after.position,)
        if types is None:
            where = "position > ?"
        else:
            marks = ", ".join("?" * len(types))
            where, params = f"position > ? AND type IN ({marks})", (*params, *types)
        return self._run(
            self._select,
            f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY position LIMIT ?",
            (*params, limit),
        )

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        to_uuid, to_datetime = uuid_from_bytes, datetime.fromtimestamp
        return [
            (s, v, p, 0, to_uuid(i), t, sv, enc, d, m, to_datetime(at, UTC))
            for s, v, p, i, t, sv, enc, d, m, at in self._db.execute(sql, params)
        ]

    def _streams_page(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        return self._run(
            self._fetch,
            "SELECT stream_id, max(version) FROM events WHERE stream_id > ?"
            " GROUP BY stream_id ORDER BY stream_id LIMIT ?",
            ("" if after is None else after, limit),
        )

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._run(self._write_snapshot, snapshot)

    def _write_snapshot(self, snapshot: SnapshotRecord) -> None:
        with self._db:  # one transaction: the new snapshot in, the oldest ones out
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)", snapshot
            )
            self._db.execute(_PRUNE_SNAPSHOTS, (snapshot.stream_id, snapshot.stream_id))

    def read_snapshots(self, stream_id: str, limit: int = 3) -> list[SnapshotRecord]:
        rows = self._run(
            self._fetch,
            "SELECT * FROM snapshots WHERE stream_id = ? ORDER BY version DESC LIMIT ?",
            (stream_id, limit),
        )
        return [SnapshotRecord(*row) for row in rows]


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("facta.backends") / "sql" / "sqlite"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(int(f.name.split("_", 1)[0]), f.read_text(encoding="utf-8")) for f in files]


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the file's schema (``PRAGMA user_version``) up to date, in one transaction."""
    migrations = _migrations()
    latest = migrations[-1][0]
    db.execute("BEGIN IMMEDIATE")
    try:
        current = db.execute("PRAGMA user_version").fetchone()[0]
        if current > latest:
            raise SchemaVersionError(
                f"the SQLite file's schema is version {current}, but this facta knows versions up "
                f"to {latest}; upgrade facta"
            )
        for number, sql in migrations:
            if number > current:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def _written(appends: list[PreparedAppend], results: list[AppendResult], now: float) -> list[Row]:
    """The rows an append wrote, as read_all returns them: what inline projections get."""
    at = datetime.fromtimestamp(now, UTC)
    rows = []
    for append, result in zip(appends, results, strict=True):
        for offset, e in enumerate(append.events, 1 - len(append.events)):
            rows.append(
                (
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
