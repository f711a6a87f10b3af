# WARNING: generated from src/facta/backends/postgres_async.py by tools/gen_sync.py; do not edit.
"""The PostgreSQL event store: psycopg 3, a connection pool, and a global log that never skips.

- An append is one autocommitted statement (several streams: one transaction): it locks its
  stream's row in ``streams``, checks the expected version and inserts the events. The loser
  of a race writes nothing and burns no position.
- Each event row records its writer's transaction id. ``read_all`` returns only rows of
  transactions older than every transaction still open, in (transaction id, position) order,
  so a writer that took its position early and committed late is never skipped. The price:
  one long transaction anywhere in the cluster delays readers (never writers); see
  :meth:`PostgresEventStore.reader_lag`.
- Each append NOTIFYs the store's channel on commit; :meth:`~PostgresEventStore.wait_for_events`
  wakes on it. It is a hint for tailing readers; correctness comes from ``read_all`` alone.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from facta.appending import (
    AppendResult,
    ExpectedVersion,
    PreparedAppend,
    check_expected,
    duplicate_event_id,
)
from facta.backends.postgres_schema import check_schema
from facta.backends.postgres_schema import migrate as migrate  # re-exported
from facta.backends.postgres_sql import PoolExhausted as PoolExhausted  # re-exported
from facta.backends.postgres_sql import Queries, describe, names, split_url
from facta.backends.postgres_sql import ReaderLag as ReaderLag  # re-exported
from facta.codec import Codec
from facta.errors import (
    ConcurrencyError,
    DuplicateEventId,
    InvalidEvent,
    InvalidStreamId,
    StoreError,
)
from facta.events import Checkpoint
from facta.ids import validate_stream_id
from facta.snapshots import SnapshotRecord
from facta.store import DataRow, EventStore, Row

__all__ = ["PostgresEventStore", "migrate"]

_LAST_VERSION = 2**62  # read_stream's upper bound when the caller gives none
_CLAIM_ATTEMPTS = 3  # a claim that failed is retried while the stream's version satisfies it


class PostgresEventStore(EventStore):
    """An event store in one schema of a PostgreSQL database.

    ``url`` is a libpq URL; a ``?schema=NAME`` parameter (or ``schema=``, which wins) picks
    the schema, ``public`` by default, so several stores can share a database. Nothing
    connects until the first call, which migrates the schema (unless ``migrate`` is false)
    and opens a pool of up to ``pool_size`` connections; a call that waits longer than
    ``pool_timeout`` seconds for one raises :class:`PoolExhausted`.
    """

    def __init__(
        self,
        url: str,
        codec: Codec | None = None,
        *,
        schema: str | None = None,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        migrate: bool = True,
    ) -> None:
        super().__init__(codec)
        conninfo, self.schema = split_url(url, schema)
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if not pool_timeout > 0:
            raise ValueError(f"pool_timeout must be > 0 seconds, got {pool_timeout!r}")
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error:
            raise ValueError("not a valid PostgreSQL URL (libpq cannot parse it)") from None
        self._conninfo = conninfo
        self._where = describe(conninfo, self.schema)
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:  # an unreachable server fails as fast as the pool
            self._kwargs["connect_timeout"] = max(2, math.ceil(pool_timeout))
        self._migrate = migrate
        self._sql = sql = Queries.render(self.schema)
        self._write_one = (sql.write_one_any, sql.write_one_new, sql.write_one_existing)
        self._write_many = (sql.write_any, sql.write_new, sql.write_existing)
        self.pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            kwargs=self._kwargs,
            configure=_configure,
            open=False,
            name=f"facta:{self.schema}",
        )
        self._ready = False
        self._closed = False
        self._open_lock = threading.Lock()
        self._listen_lock = threading.Lock()
        self._listener: Connection[TupleRow] | None = None

    # -- connections -----------------------------------------------------------------------

    def _open(self) -> None:
        """Check (or migrate) the schema and open the pool, once."""
        with self._open_lock:
            if self._ready:
                return
            if self._closed:
                raise StoreError(f"the PostgreSQL event store ({self._where}) is closed")
            try:
                with Connection.connect(self._conninfo, **self._kwargs) as conn:
                    check_schema(conn, self.schema, migrate=self._migrate)
                self.pool.open(wait=True)
            except psycopg.Error as e:
                raise StoreError(
                    f"cannot open the PostgreSQL event store ({self._where}): {e}"
                ) from e
            self._ready = True

    def _getconn(self) -> Connection[TupleRow]:
        if not self._ready:
            self._open()
        try:
            return self.pool.getconn()
        except (PoolTimeout, TooManyRequests) as e:
            raise self._exhausted() from e
        except psycopg.Error as e:  # the pool was closed meanwhile
            raise StoreError(f"PostgreSQL event store ({self._where}): {e}") from e

    def _exhausted(self) -> PoolExhausted:
        size, timeout = self.pool.max_size, self.pool.timeout
        opened = self.pool.get_stats().get("pool_size", size)
        why = (
            f"all {size} connections of the pool are in use"
            if opened >= size
            else f"the pool holds {opened} and could not open another (is the server reachable?)"
        )
        return PoolExhausted(
            f"no connection to PostgreSQL ({self._where}) within pool_timeout={timeout:g}s: "
            f"{why} (pool_size={size}). Raise pool_size or pool_timeout, or hold connections "
            "for less time"
        )

    @contextmanager
    def connection(self) -> Iterator[Connection[TupleRow]]:
        """A connection from the store's pool, for work in the same database as the events.

        It is in autocommit mode: use ``conn.transaction()`` to write a read model and its
        checkpoint atomically. Note that a transaction holding a transaction id delays every
        reader of the global log until it ends: keep transactions short.
        """
        conn = self._getconn()
        try:
            yield conn
        finally:
            self.pool.putconn(conn)

    def _query(self, query: str, params: Sequence[Any], *, fetch: bool = True) -> list[Row]:
        """Run one statement on a pooled connection; its rows (binary: no text parsing)."""
        conn = self._getconn()
        try:
            cur = conn.execute(query, params, prepare=True, binary=True)
            return cur.fetchall() if fetch else []
        except UnicodeEncodeError as e:
            raise InvalidStreamId(f"a stream id or type name is not valid Unicode: {e}") from e
        except psycopg.Error as e:
            raise self._failed(e, params) from e
        finally:
            self.pool.putconn(conn)

    def _failed(self, e: psycopg.Error, params: Sequence[Any]) -> Exception:
        if isinstance(e, pg_errors.ProgramLimitExceeded) and params and isinstance(params[0], str):
            stream_id = params[0]
            return InvalidStreamId(
                f"stream id {stream_id[:80]!r}... ({len(stream_id.encode()):,} bytes) is too long "
                f"for PostgreSQL's index of stream ids; nothing was written: {e}"
            )
        return StoreError(f"PostgreSQL event store ({self._where}): {e}")

    def close(self) -> None:
        self._closed, self._ready = True, False
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.pool.close()

    # -- writing ---------------------------------------------------------------------------

    def _append(self, appends: list[PreparedAppend]) -> list[AppendResult]:
        conn = self._getconn()
        try:
            if len(appends) == 1 and self._inline is None:
                return [self._write(conn, appends[0])]
            with conn.transaction():  # lock streams in one order: no deadlocks
                done = {}
                for append in sorted(appends, key=lambda a: a.stream_id):
                    done[append.stream_id] = self._write(conn, append)
                if self._inline is not None:  # inline projections commit with the events
                    cur = conn.execute(self._sql.written, prepare=True, binary=True)
                    self._inline.call(conn, cur.fetchall())
            return [done[append.stream_id] for append in appends]
        except UnicodeEncodeError as e:
            raise InvalidEvent(f"{names(appends)}: text is not valid Unicode: {e}") from e
        except pg_errors.UniqueViolation as e:
            if e.diag.constraint_name != "events_event_id_key":
                raise self._failed(e, ()) from e
            raise self._duplicate(conn, appends) from None
        except pg_errors.ProgramLimitExceeded as e:
            stream_id = max((a.stream_id for a in appends), key=len)
            raise self._failed(e, (stream_id,)) from e
        except psycopg.Error as e:
            if not conn.broken:
                raise self._failed(e, ()) from e
            raise StoreError(
                f"PostgreSQL event store ({self._where}): the connection failed while appending "
                f"to {names(appends)} ({e}). Nothing is ever half-written, but the append may "
                "have committed: retry it with the same event ids (NewEvent); a retry of a stored "
                "append reports already_appended"
            ) from e
        finally:
            self.pool.putconn(conn)

    def _write(self, conn: Connection[TupleRow], append: PreparedAppend) -> AppendResult:
        """Claim the stream at its expected version and insert the events, in one statement."""
        stream_id, expected, events = append
        if not events:
            actual = _version(conn, self._sql.stream_version, stream_id)
            check_expected(stream_id, expected, actual)
            return AppendResult(stream_id, actual, 0)
        # Which claim: ANY upserts the stream, NO_STREAM creates it, others update it.
        kind = 0 if expected == ExpectedVersion.ANY else 1 if expected == 0 else 2
        params: dict[str, Any]
        if len(events) == 1:
            query = self._write_one[kind]
            event_id, type_name, version, encoding, data, metadata = events[0]
            params = {
                "stream": stream_id,
                "n": 1,
                "expected": expected,
                "id": event_id,
                "type": type_name,
                "sv": version,
                "enc": encoding,
                "data": data,
                "meta": metadata,
            }
        else:
            query = self._write_many[kind]
            ids, types, versions, encodings, datas, metadatas = zip(*events, strict=True)
            params = {
                "stream": stream_id,
                "n": len(events),
                "expected": expected,
                "ids": list(ids),
                "types": list(types),
                "svs": list(versions),
                "encs": list(encodings),
                "data": list(datas),
                "meta": list(metadatas),
            }
        for _ in range(_CLAIM_ATTEMPTS):
            cur = conn.execute(query, params, prepare=True)
            row = cur.fetchone()
            if row is not None:
                return AppendResult(stream_id, row[0], row[1])
            # The stream is elsewhere: ConcurrencyError, unless it has moved to where the
            # append expects it since the statement looked (then the claim is tried again).
            actual = _version(conn, self._sql.stream_version, stream_id)
            check_expected(stream_id, expected, actual)
        stated = ExpectedVersion(expected) if expected <= 0 else expected
        raise ConcurrencyError(stream_id, stated, actual)

    def _duplicate(
        self, conn: Connection[TupleRow], appends: list[PreparedAppend]
    ) -> DuplicateEventId:
        """The error for an append that repeats an event id, naming it if it can."""
        ids = [event.event_id for append in appends for event in append.events]
        try:
            cur = conn.execute(self._sql.locate, (ids,), prepare=True)
            stored = {row[0] for row in cur.fetchall()}
        except psycopg.Error:  # the append's error says enough
            stored = set()
        return duplicate_event_id(appends, stored)

    def _locate(self, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, int]]:
        rows = self._query(self._sql.locate, (event_ids,))
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        validate_stream_id(snapshot.stream_id)
        self._query(self._sql.write_snapshot, snapshot, fetch=False)
        stream_twice = (snapshot.stream_id, snapshot.stream_id)  # keep only the newest few
        self._query(self._sql.prune_snapshots, stream_twice, fetch=False)

    # -- reading ---------------------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        validate_stream_id(stream_id)
        rows = self._query(self._sql.stream_version, (stream_id,))
        return int(rows[0][0]) if rows else 0

    def _read_stream_page(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[Row]:
        last = _LAST_VERSION if to_version is None else to_version
        return self._query(self._sql.read_stream, (stream_id, from_version, last, limit))

    def _read_stream_data_page(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[DataRow]:
        last = _LAST_VERSION if to_version is None else to_version
        return self._query(self._sql.replay_stream, (stream_id, from_version, last, limit))

    def _read_all_page(
        self, after: Checkpoint, types: tuple[str, ...] | None, limit: int
    ) -> list[Row]:
        if types is None:
            params: tuple[Any, ...] = (after.transaction_id, after.position, limit)
            return self._query(self._sql.read_all, params)
        params = (after.transaction_id, after.position, list(types), limit)
        return self._query(self._sql.read_all_types, params)

    def _streams_page(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        rows = self._query(self._sql.streams, ("" if after is None else after, limit))
        return [(row[0], row[1]) for row in rows]

    def read_snapshots(self, stream_id: str, limit: int = 3) -> list[SnapshotRecord]:
        validate_stream_id(stream_id)
        rows = self._query(self._sql.read_snapshots, (stream_id, limit))
        return [SnapshotRecord(*row) for row in rows]

    # -- tailing the global log ------------------------------------------------------------

    def reader_lag(self) -> ReaderLag:
        """How many committed events ``read_all`` cannot return yet, and which transaction
        holds them back (see :class:`ReaderLag`)."""
        ((held_back, pid, age),) = self._query(self._sql.reader_lag, ())
        return ReaderLag(held_back, pid, age)

    def wait_until_readable(self, seconds: float) -> bool:
        """Wait until ``read_all`` can return every event committed before this call.

        Read-your-writes for the global log: an event is readable once every transaction
        older than its own has ended, anywhere in the cluster. Returns False if that takes
        longer than ``seconds`` (see :meth:`reader_lag` for who holds it back).
        """
        ((newest,),) = self._query(self._sql.newest_transaction, ())
        deadline = time.monotonic() + seconds
        while newest:  # 0: nothing is held back
            ((horizon,),) = self._query(self._sql.horizon, ())
            if horizon > newest:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def wait_for_events(self, seconds: float) -> bool:
        """Wait until an append to this store commits (True) or ``seconds`` pass (False).

        A hint for tailing readers, not a guarantee: an event can arrive without a wake-up
        (it was held back behind an older transaction) and a wake-up without a new event, so
        read with ``read_all`` after every return. The first call starts listening and returns
        True at once, since events may have been appended before it listened. Listening uses
        one connection of its own, outside the pool; concurrent callers take turns.
        """
        with self._listen_lock:
            if self._closed:
                raise StoreError(f"the PostgreSQL event store ({self._where}) is closed")
            try:
                if self._listener is None or self._listener.closed:
                    listener = Connection.connect(self._conninfo, **self._kwargs)
                    listener.execute(self._sql.listen)
                    self._listener = listener
                    return True
                woke = False
                for _ in self._listener.notifies(timeout=seconds, stop_after=1):
                    woke = True
                return woke
            except psycopg.Error as e:
                raise StoreError(
                    f"PostgreSQL event store ({self._where}): listening for appends failed: {e}"
                ) from e


def _configure(conn: Connection[TupleRow]) -> None:
    conn.execute("SET timezone = 'UTC'")  # recorded_at comes back in UTC, as elsewhere


def _version(conn: Connection[TupleRow], query: str, stream_id: str) -> int:
    cur = conn.execute(query, (stream_id,), prepare=True)
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


# facta-pg-ready
