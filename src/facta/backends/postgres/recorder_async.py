"""The PostgreSQL recorder: psycopg 3, a connection pool, and a global log that never skips.

- An append is one autocommitted statement: it takes its stream's advisory lock, locks the
  stream's row in ``facta_streams``, checks the expected version and inserts the events. The
  loser of a race writes nothing and burns no position. An append to several streams is one
  transaction that takes all their advisory locks (in key order: writers never deadlock),
  claims them, then inserts their events in the order given.
- Each event row records its writer's transaction id. ``read_all`` returns only rows of
  transactions older than every transaction still open, in (transaction id, position) order,
  so a writer that took its position early and committed late is never skipped. A writer waits
  for its streams' locks before it has a transaction id, so each stream's versions come in
  that order too (docs/design.md, "Global order"). The price:
  one long transaction in the store's database delays readers (never writers); see
  :meth:`AsyncPostgresRecorder.reader_lag`.
- Connections outlive the server's sessions: a pooled connection the server ended (a restart,
  a killed session) is replaced before any caller gets it, a read whose connection dies under
  it runs again once, and while the server is down callers wait (up to ``pool_timeout``) and
  get through within about half a second of its return. An append is never sent twice: one
  whose connection dies under it raises, saying it may have committed.
- Given ``replicas`` (hot standbys), the reads that may trail the primary (streams, loads,
  snapshots, the global log) go to them in turn, a pool each (:mod:`.replicas_async`);
  :meth:`~AsyncPostgresRecorder.reading` pins one server for a read that must be fresh.
  On a standby the global log's horizon is the snapshot's xmin (``queries``).
- Each append NOTIFYs the store's channel on commit; :meth:`~AsyncPostgresRecorder.wait_for_events`
  wakes on it. It is a hint for tailing readers; correctness comes from ``read_all`` alone.
"""

from __future__ import annotations

import asyncio  # sync: import threading
import contextlib
import copy
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC
from functools import partial
from typing import Any, Unpack, cast

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import RowMaker, TupleRow, tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from facta.appending import (
    AppendResult,
    EncodedEvent,
    ExpectedVersion,
    PreparedAppend,
    check_aggregate_type,
    check_expected,
    duplicate_event_id,
)
from facta.backends.postgres.callers_async import Caller, joinable
from facta.backends.postgres.checkpoints_async import AsyncPostgresCheckpoints, statuses
from facta.backends.postgres.errors import LockTimeout, PoolExhausted
from facta.backends.postgres.keys_async import AsyncPostgresKeyTable
from facta.backends.postgres.liveness import dead_while_idle
from facta.backends.postgres.migrations_async import apply_migrations, check_schema
from facta.backends.postgres.options import Options
from facta.backends.postgres.queries import Queries
from facta.backends.postgres.reader_lag import ReaderLag
from facta.backends.postgres.replica_lag import ReplicaLag
from facta.backends.postgres.replicas_async import AsyncReplicas
from facta.backends.postgres.settings import Settings
from facta.backends.postgres.slice_leases_async import AsyncPostgresSliceLeases, sliced_statuses
from facta.errors import (
    ConcurrencyError,
    DuplicateEventId,
    InvalidEvent,
    InvalidStreamId,
    StoreError,
    TransactionConflict,
    UnusableConnection,
)
from facta.events import Checkpoint
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
    SlicedStatus,
    StoredEvent,
    StreamInfo,
    StreamVersion,
)
from facta.snapshots import SnapshotRecord

__all__ = ["AsyncPostgresRecorder"]

_LAST_VERSION = 2**62  # read_stream's upper bound when the caller gives none
_CLAIM_ATTEMPTS = 3  # a claim that failed is retried while the stream's version satisfies it
# While the server is down, the pool tries to connect this often (see _reconnect_failed).
_RECONNECT_SECONDS = 0.5
# Rows of read_stream and read_all become StoredEvent as psycopg reads them; the query has
# exactly its fields, so the tuple is made without StoredEvent._make's checks.
_make_stored = cast("RowMaker[StoredEvent]", partial(tuple.__new__, StoredEvent))


def _stored(cursor: Any) -> RowMaker[StoredEvent]:
    """A psycopg row factory: each row as a :class:`StoredEvent`."""
    return _make_stored


class AsyncPostgresRecorder(AsyncRecorder):
    """Records a store in one schema of a PostgreSQL database.

    ``url`` is a libpq URL; a ``?schema=NAME`` parameter (or ``schema=``, which wins) picks
    the schema, ``public`` by default, so several stores can share a database. Nothing
    connects until the first call, which checks (and as allowed creates or migrates) the
    schema and opens a pool of up to ``pool_size`` connections; a call that waits longer
    than ``pool_timeout`` seconds for one raises :class:`PoolExhausted`. See
    :mod:`facta.backends.postgres` for ``migrate``, ``create`` and ``read_only``.
    """

    # Inline projection handlers are awaited inside the append's transaction.
    sync_transactions = False  # sync: sync_transactions = True

    def __init__(self, url: str, **options: Unpack[Options]) -> None:
        self.settings = settings = Settings.parse(url, **options)
        self.schema, self.location = settings.schema, settings.location
        self.read_only = settings.read_only
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(settings.conninfo):  # fail as fast as the pool
            self._kwargs["connect_timeout"] = max(2, math.ceil(settings.pool_timeout))
        self._sql = sql = Queries.render(self.schema)
        self._write_one = (sql.write_one_any, sql.write_one_new, sql.write_one_existing)
        self._write_many = (sql.write_any, sql.write_new, sql.write_existing)
        self._claims = (sql.claim_any, sql.claim_new, sql.claim_existing)
        self.pool = self._make_pool(settings.conninfo, f"facta:{self.schema}")
        # Hot standbys, if given: the reads that may trail the primary go there in turn.
        self.replicas: AsyncReplicas | None = None
        if settings.replicas:
            pools = [
                self._make_pool(conninfo, f"facta:{self.schema}:replica{n}")
                for n, (conninfo, _) in enumerate(settings.replicas)
            ]
            locations = [location for _, location in settings.replicas]
            self.replicas = AsyncReplicas(pools, locations, self._on, sql)
        # The one pool this recorder's reads go to (see reading()); None: the default routing.
        self._pinned: AsyncConnectionPool[Any] | None = None
        self._ready = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._listen_lock = asyncio.Lock()
        self._listener: AsyncConnection[TupleRow] | None = None
        self._standby = False  # the store's own server is a standby: nothing to listen to
        # The store's database (name, oid, server start): a caller's connection must match.
        self._identity: tuple[Any, ...] | None = None

    def _make_pool(self, conninfo: str, name: str) -> AsyncConnectionPool[Any]:
        """A pool of the store's kind (the primary's or a replica's), not opened yet."""
        return AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=self.settings.pool_size,
            timeout=self.settings.pool_timeout,
            kwargs=self._kwargs,
            configure=self._configure_pooled,
            reconnect_timeout=_RECONNECT_SECONDS,
            reconnect_failed=self._reconnect_failed,
            open=False,
            name=name,
        )

    # -- connections -----------------------------------------------------------------------

    async def _configure(self, conn: AsyncConnection[TupleRow]) -> None:
        """Set up a new session: UTC times (as every backend returns), and read-only if asked."""
        await conn.execute("SET timezone = 'UTC'")
        if self.read_only:
            await conn.execute("SET default_transaction_read_only = on")

    async def _configure_pooled(self, conn: AsyncConnection[TupleRow]) -> None:
        """A pooled session also waits at most ``lock_timeout`` for a lock (0: no limit).

        Sessions of their own (migrations waiting their turn, runners) wait as long as it takes.
        """
        await self._configure(conn)
        milliseconds = math.ceil(self.settings.lock_timeout * 1000)
        await conn.execute(f"SET lock_timeout = {milliseconds:d}")

    async def _connect(self) -> AsyncConnection[TupleRow]:
        """A session of its own, outside the pool, set up as the pool's are (autocommit)."""
        conn = await AsyncConnection.connect(self.settings.conninfo, **self._kwargs)
        try:
            await self._configure(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _open(self) -> None:
        """Check (create, migrate) the schema and open the pool, once."""
        async with self._open_lock:
            if self._ready:
                return
            self._check_open()
            try:
                async with await self._connect() as conn:
                    await check_schema(conn, self.settings)
                await self.pool.open(wait=True)
                if self.replicas is not None:
                    await self.replicas.open()
            except psycopg.Error as e:
                raise StoreError(f"cannot open the PostgreSQL store at {self.location}: {e}") from e
            self._ready = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the PostgreSQL store at {self.location} is closed")

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"the PostgreSQL store at {self.location} was opened read-only; nothing was written"
            )

    async def _ensure_open(self) -> None:
        if not self._ready:
            await self._open()

    async def _getconn(
        self, pool: AsyncConnectionPool[Any] | None = None
    ) -> AsyncConnection[TupleRow]:
        """A connection of ``pool`` (the primary's by default) that was alive a moment ago,
        within ``pool_timeout``.

        A connection the server ended while it sat in the pool (a restart, a killed session)
        is closed and handed back for the pool to replace, never to a caller.
        """
        if not self._ready:
            await self._open()
        pool = self.pool if pool is None else pool
        try:
            conn: AsyncConnection[TupleRow] = await pool.getconn()
            if dead_while_idle(conn):
                deadline = time.monotonic() + pool.timeout
                while dead_while_idle(conn):
                    await conn.close()
                    await pool.putconn(conn)  # the pool opens another in its place
                    conn = await pool.getconn(deadline - time.monotonic())
            return conn
        except (PoolTimeout, TooManyRequests) as e:
            raise self._exhausted(pool) from e
        except psycopg.Error as e:  # the pool was closed meanwhile
            raise StoreError(f"PostgreSQL store at {self.location}: {e}") from e

    async def _reconnect_failed(self, pool: AsyncConnectionPool[Any]) -> None:
        """The pool gave up opening a connection (the server is down): while callers wait for
        one, try again at once, so that they get through as soon as the server is back.

        The pool's own back-off doubles from 1 s, so it would retry ever more seldom; giving up
        after ``_RECONNECT_SECONDS`` and starting afresh keeps attempts that often.
        """
        if pool.get_stats().get("requests_waiting", 0):
            with contextlib.suppress(psycopg.Error):  # closed meanwhile
                await pool.check()  # the pool grows again when it has no connection

    def _exhausted(self, pool: AsyncConnectionPool[Any]) -> PoolExhausted:
        size, timeout = pool.max_size, pool.timeout
        opened = pool.get_stats().get("pool_size", size)
        location = self.location
        if self.replicas is not None and pool in self.replicas.pools:
            location = f"replica {self.replicas.locations[self.replicas.pools.index(pool)]}"

        why = (
            f"all {size} connections of the pool are in use"
            if opened >= size
            else f"the pool holds {opened} and could not open another (is the server reachable?)"
        )
        return PoolExhausted(
            f"no connection to PostgreSQL ({location}) within pool_timeout={timeout:g}s: "
            f"{why} (pool_size={size}). Raise pool_size or pool_timeout, or hold connections "
            "for less time"
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A connection from the store's pool, for work in the same database as the events.

        It is in autocommit mode: use ``conn.transaction()`` to write atomically. Note that a
        transaction holding a transaction id delays every reader of the global log until it
        ends: keep transactions short.
        """
        conn = await self._getconn()
        try:
            yield conn
        finally:
            await self.pool.putconn(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A pooled connection in a transaction, ``search_path`` set to the store's schema
        (then ``public``): read models live beside the events. Commits on success."""
        self._check_writable()
        async with self.connection() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(self._sql.use_schema)
                    yield conn
            except psycopg.Error as e:
                raise StoreError(f"PostgreSQL store at {self.location}: {e}") from e

    async def _query(
        self,
        query: str,
        params: Sequence[Any],
        *,
        fetch: bool = True,
        rows: Any = tuple_row,
        pool: AsyncConnectionPool[Any] | None = None,
    ) -> list[Any]:
        """Run one statement on a connection of ``pool`` (the primary's by default); its rows
        (binary: no text parsing), made by the row factory ``rows``.

        Every statement run here is a read or an idempotent write (a snapshot's upsert), so
        one whose connection died under it runs again, once, on another connection; so does
        a read a standby cancelled for a conflict with the WAL it replays.
        """
        pool = self.pool if pool is None else pool
        retried = False
        while True:
            conn = await self._getconn(pool)
            try:
                cur = conn.cursor(row_factory=rows)
                await cur.execute(query, params, prepare=True, binary=True)
                return await cur.fetchall() if fetch else []
            except UnicodeEncodeError as e:
                raise InvalidStreamId(f"a stream id or type name is not valid Unicode: {e}") from e
            except psycopg.Error as e:
                on_replica = pool is not self.pool
                if isinstance(e, pg_errors.UndefinedTable) and on_replica:
                    raise self._no_store_yet(pool, e) from e
                conflict = on_replica and isinstance(e, pg_errors.SerializationFailure)
                if not (conn.broken or conflict) or retried:
                    raise self._failed(e, params) from e
                retried = True
            finally:
                await pool.putconn(conn)

    async def _on(self, pool: AsyncConnectionPool[Any], query: str) -> list[Any]:
        """Run a statement without parameters on a connection of ``pool`` (a replica's)."""
        return await self._query(query, (), pool=pool)

    def _no_store_yet(self, pool: AsyncConnectionPool[Any], e: psycopg.Error) -> StoreError:
        assert self.replicas is not None
        where = self.replicas.locations[self.replicas.pools.index(pool)]
        return StoreError(
            f"replica {where} holds no facta store in schema {self.schema!r} yet: it has not "
            f"replayed the store's creation or migration ({e}). Wait for it (recorder."
            "replica_lag() says how far behind it is), or read with fresh=True"
        )

    def _read_pool(self) -> AsyncConnectionPool[Any]:
        """Where a read that may trail the primary goes: the pinned pool (``reading()``),
        else the next replica's, else the primary's."""
        if self._pinned is not None:
            return self._pinned
        return self.pool if self.replicas is None else self.replicas.next()

    def _failed(self, e: psycopg.Error, params: Sequence[Any]) -> Exception:
        if isinstance(e, pg_errors.ProgramLimitExceeded) and params and isinstance(params[0], str):
            stream_id = params[0]
            return InvalidStreamId(
                f"stream id {stream_id[:80]!r}... ({len(stream_id.encode()):,} bytes) is too long "
                f"for PostgreSQL's index of stream ids; nothing was written: {e}"
            )
        if isinstance(e, pg_errors.LockNotAvailable):
            return LockTimeout(
                f"PostgreSQL store at {self.location}: waited more than {self._lock_timeout()} "
                f"for a lock another session holds; nothing was written: {e}"
            )
        if isinstance(e, pg_errors.ReadOnlySqlTransaction):
            return StoreError(
                f"the PostgreSQL store at {self.location} was opened read-only; nothing was "
                f"written: {e}"
            )
        return StoreError(f"PostgreSQL store at {self.location}: {e}")

    def _lock_timeout(self) -> str:
        return f"lock_timeout={self.settings.lock_timeout:g}s"

    async def close(self) -> None:
        self._closed, self._ready = True, False
        async with self._listen_lock:
            if self._listener is not None:
                await self._listener.close()
                self._listener = None
        await self.pool.close()
        if self.replicas is not None:
            await self.replicas.close()

    async def migrate(self) -> list[int]:
        """Apply the pending schema migrations now; the numbers applied ([] when up to date).

        Runs on a connection of its own; other processes migrating the same schema wait their
        turn. With ``create=False`` a schema holding no store raises ``NotAFactaStore``.
        """
        self._check_open()
        if self.read_only:
            raise StoreError(
                f"the PostgreSQL store at {self.location} was opened read-only: it cannot be "
                "migrated; open it without read_only (or run `facta migrate URL`)"
            )
        try:
            async with await self._connect() as conn:
                return await apply_migrations(conn, self.settings)
        except psycopg.Error as e:
            raise StoreError(
                f"migrating the PostgreSQL store at {self.location} failed: {e}"
            ) from e

    # -- writing ---------------------------------------------------------------------------

    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        self._check_writable()
        conn = await self._getconn()
        try:
            results = await self._append(conn, appends, None)
            if self.replicas is None or not self.settings.commit_lsn:
                return results
            return await self._with_lsn(conn, results)
        finally:
            await self.pool.putconn(conn)

    async def _with_lsn(
        self, conn: AsyncConnection[TupleRow], results: list[AppendResult]
    ) -> list[AppendResult]:
        """The results of a committed append, with the WAL position of its commit (or past
        it): a replica that has replayed that far shows the append. Asked only when the
        store has replicas and ``commit_lsn``: it costs a round trip."""
        try:
            cur = await _execute(conn, self._sql.commit_lsn)
            row = await cur.fetchone()
        except psycopg.Error:  # committed all the same: fresh reads of it go to the primary
            return results
        assert row is not None
        return [result._replace(lsn=row[0]) for result in results]

    async def append_in_transaction(
        self, connection: object, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        """:meth:`append` on the caller's connection, in the caller's open transaction.

        The statements run under a savepoint (released on success, rolled back when the
        append raises, so the transaction stays usable); facta never commits. A transaction
        that already has an id (it wrote, or locked rows, before appending) is refused with
        ``TransactionConflict`` if a younger transaction wrote to one of the streams: its
        rows would come before theirs in the global log (docs/guides/transactions.md).
        """
        self._check_writable()
        conn = joinable(connection, self.location)
        await self._ensure_open()
        caller = await self._join(conn)
        return await self._append(conn, appends, caller)

    async def _join(self, conn: AsyncConnection[Any]) -> Caller:
        """Check that the caller's connection is to the store's database; its transaction's
        id, if it has one yet."""
        try:
            cur = await _execute(conn, self._sql.identity)
            row = await cur.fetchone()
        except psycopg.Error as e:
            raise StoreError(
                f"PostgreSQL store at {self.location}: the caller's connection failed: {e}; "
                "nothing was written"
            ) from e
        assert row is not None
        if self._identity is None:
            ((*identity, _),) = await self._query(self._sql.identity, ())
            self._identity = tuple(identity)
        if tuple(row[:3]) != self._identity:
            raise UnusableConnection(
                f"connection= is to database {row[0]!r} of another server or database than "
                f"the PostgreSQL store at {self.location}; nothing was written. Append on a "
                "connection to the store's own database"
            )
        return Caller(row[3])

    async def _append(
        self,
        conn: AsyncConnection[Any],
        appends: Sequence[PreparedAppend],
        caller: Caller | None,
    ) -> list[AppendResult]:
        """Write the appends on ``conn``: a pooled connection, in a transaction of its own
        (or one statement), or the caller's, under a savepoint in the caller's transaction."""
        hook = self.on_append
        try:
            if len(appends) == 1 and hook is None and caller is None:
                return [await self._write(conn, appends[0])]
            async with conn.transaction():  # on the caller's connection: a savepoint
                if caller is not None and caller.transaction_id is not None:
                    await self._check_order(conn, appends, caller.transaction_id)
                if len(appends) == 1:
                    results = [await self._write(conn, appends[0])]
                else:
                    results = await self._write_several(conn, appends)
                await self._call_hook(conn, None if caller is None else appends)
            return results
        except UnicodeEncodeError as e:
            raise InvalidEvent(f"{_names(appends)}: text is not valid Unicode: {e}") from e
        except pg_errors.UniqueViolation as e:
            if e.diag.constraint_name != "facta_events_event_id_key":
                raise self._failed(e, ()) from e
            raise await self._duplicate(conn, appends) from None
        except pg_errors.ProgramLimitExceeded as e:
            stream_id = max((a.stream_id for a in appends), key=len)
            raise self._failed(e, (stream_id,)) from e
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as e:
            if caller is None:
                raise self._failed(e, ()) from e
            raise await self._conflict(
                appends, f"a concurrent transaction got in the way ({e})"
            ) from e
        except pg_errors.ReadOnlySqlTransaction as e:
            if caller is None:
                raise self._failed(e, ()) from e
            raise UnusableConnection(
                f"{_names(appends)}: the caller's transaction is read-only; nothing was written"
            ) from e
        except pg_errors.LockNotAvailable as e:
            which = "it" if len(appends) == 1 else "one of them"
            raise LockTimeout(
                f"{_names(appends)}: waited more than {self._lock_timeout()} for a lock another "
                f"session holds on {which} (a writer in a long transaction, or a session that "
                "locked the stream's row); nothing was written. Retry, end that transaction, or "
                "raise lock_timeout (0: no limit)"
            ) from e
        except psycopg.Error as e:
            if not conn.broken:
                raise self._failed(e, ()) from e
            if caller is not None:
                raise StoreError(
                    f"PostgreSQL store at {self.location}: the caller's connection failed while "
                    f"appending to {_names(appends)} ({e}); its transaction is lost and nothing "
                    "of it was committed"
                ) from e
            raise StoreError(
                f"PostgreSQL store at {self.location}: the connection failed while appending "
                f"to {_names(appends)} ({e}). Nothing is ever half-written, but the append may "
                "have committed: retry it with the same event ids (NewEvent); a retry of a stored "
                "append reports already_appended"
            ) from e

    async def _check_order(
        self, conn: AsyncConnection[Any], appends: Sequence[PreparedAppend], transaction_id: int
    ) -> None:
        """Refuse to append in a transaction that got its id before it waited for its
        streams, if a younger transaction has written to one of them since.

        Its rows would sort before that transaction's in the global log, and the stream's
        versions would come out of order (docs/design.md, "Global order"). Each stream's
        newest rows hold its youngest transaction id (its newest version, its newest
        marker): two index probes per stream, after taking the streams' locks.
        """
        streams = [append.stream_id for append in appends if append.events]
        if not streams:
            return
        await _execute(conn, self._sql.lock_streams, (streams,))
        cur = await _execute(conn, self._sql.newer_writer, (streams, transaction_id))
        row = await cur.fetchone()
        if row is None:
            return
        stream_id, actual = row
        append = next(append for append in appends if append.stream_id == stream_id)
        raise TransactionConflict(
            stream_id,
            _stated(append.expected_version),
            actual,
            f"the caller's transaction got its id (transaction {transaction_id}) before a "
            "younger transaction appended to the stream, so its events would come before "
            "that one's in the global log. Append before the transaction writes or locks "
            "rows of its own, and it never meets this",
        )

    async def _conflict(
        self, appends: Sequence[PreparedAppend], reason: str
    ) -> TransactionConflict:
        """A ``TransactionConflict`` for the first stream of ``appends``, with its version
        as committed now."""
        append = next((a for a in appends if a.events), appends[0])
        rows = await self._query(self._sql.stream_version, (append.stream_id,))
        actual = int(rows[0][0]) if rows else 0
        if len(appends) > 1:
            reason = f"{reason}, appending to {_names(appends)}"
        return TransactionConflict(
            append.stream_id, _stated(append.expected_version), actual, reason
        )

    async def _write(self, conn: AsyncConnection[TupleRow], append: PreparedAppend) -> AppendResult:
        """Claim the stream at its expected version and insert the events, in one statement."""
        stream_id, expected, events, aggregate_type = append
        if not events:
            return AppendResult(stream_id, await self._refuse(conn, append), 0)
        kind = _claim_kind(expected)
        params: dict[str, Any]
        if len(events) == 1:  # plain values: psycopg adapts them several times faster than arrays
            event_id, type_name, version, encoding, data, metadata = events[0]
            params = {
                "stream": stream_id,
                "n": 1,
                "expected": expected,
                "aggregate": aggregate_type,
                "id": event_id,
                "type": type_name,
                "sv": version,
                "enc": encoding,
                "data": data,
                "meta": metadata,
            }
            row = await self._claim(conn, self._write_one[kind], params, append)
        else:
            params = _claim_params(append)
            params.update(_arrays(append))
            row = await self._claim(conn, self._write_many[kind], params, append)
        return AppendResult(stream_id, row[0], row[1])

    async def _write_several(
        self, conn: AsyncConnection[TupleRow], appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        """Lock the streams, claim each one in stream id order, then insert the events in the
        order of ``appends``, which is the order of the global log."""
        streams = [append.stream_id for append in appends if append.events]
        await _execute(conn, self._sql.lock_streams, (streams,))
        versions = {}
        for append in sorted(appends, key=lambda a: a.stream_id):
            if append.events:
                claim = self._claims[_claim_kind(append.expected_version)]
                row = await self._claim(conn, claim, _claim_params(append), append)
                versions[append.stream_id] = row[1]
            else:
                versions[append.stream_id] = await self._refuse(conn, append)
        results = []
        for append in appends:
            stream_id, version = append.stream_id, versions[append.stream_id]
            position = 0
            if append.events:
                params = {"stream": stream_id, "n": len(append.events), "version": version}
                params.update(_arrays(append))
                cur = await _execute(conn, self._sql.insert, params)
                inserted = await cur.fetchone()
                assert inserted is not None
                position = inserted[0]
            results.append(AppendResult(stream_id, version, position))
        return results

    async def _claim(
        self,
        conn: AsyncConnection[TupleRow],
        query: str,
        params: dict[str, Any],
        append: PreparedAppend,
    ) -> TupleRow:
        """Run a statement that claims the stream at its expected version; its row."""
        for _ in range(_CLAIM_ATTEMPTS):
            cur = await _execute(conn, query, params)
            row = await cur.fetchone()
            if row is not None:
                return row
            # The stream is elsewhere or another type's: an error, unless it has moved to
            # where the append expects it since the statement looked (then claim it again).
            actual = await self._refuse(conn, append)
        raise ConcurrencyError(append.stream_id, _stated(append.expected_version), actual)

    async def _refuse(self, conn: AsyncConnection[TupleRow], append: PreparedAppend) -> int:
        """The stream's version, after raising ``StreamDeleted``, ``WrongAggregateType`` or
        ``ConcurrencyError`` if the append does not fit the stream's row as it is now."""
        info = await _info(conn, self._sql.stream_info, append.stream_id)
        check_open(info)
        actual = 0
        if info is not None:
            check_aggregate_type(append.stream_id, info.aggregate_type, append.aggregate_type)
            actual = info.version
        check_expected(append.stream_id, append.expected_version, actual)
        return actual

    async def _call_hook(
        self, conn: AsyncConnection[Any], callers: Sequence[PreparedAppend] | None = None
    ) -> None:
        """Show the rows the open transaction wrote to the inline projections, if any.

        In the caller's transaction (``callers``: its appends) only the rows of those appends
        are shown (it may have appended before), in UTC as always, and the caller's
        ``search_path`` is set back afterwards.
        """
        hook = self.on_append
        if hook is None:
            return
        written = AsyncCursor(conn, row_factory=_stored)
        if callers is None:
            await written.execute(self._sql.written, prepare=True, binary=True)
        else:
            ids = [event.event_id for append in callers for event in append.events]
            await written.execute(self._sql.written_ids, (ids,), prepare=True, binary=True)
        events = await written.fetchall()
        if not events:
            return
        if callers is None:
            await conn.execute(self._sql.use_schema)
            await hook.call_async(conn, events)
            return
        events = [row._replace(recorded_at=row.recorded_at.astimezone(UTC)) for row in events]
        cur = await _execute(conn, self._sql.swap_search_path)
        swapped = await cur.fetchone()
        assert swapped is not None
        await hook.call_async(conn, events)
        await _execute(conn, self._sql.restore_search_path, (swapped[0],))

    # -- lifecycle ---------------------------------------------------------------------------

    async def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        async with self._changing(stream_id, "deleting") as (conn, info):
            version = check_deletable(stream_id, info, expected_version)
            position = await self._mark(conn, stream_id, marker)
            if hard:
                await conn.execute(self._sql.delete_events, (stream_id,), prepare=True)
                await conn.execute(self._sql.delete_snapshots, (stream_id,), prepare=True)
            if hard and reuse:
                await conn.execute(self._sql.forget_stream, (stream_id,), prepare=True)
            else:
                deletion = self._sql.hard_delete if hard else self._sql.soft_delete
                await conn.execute(deletion, (stream_id,), prepare=True)
            await self._call_hook(conn)
        return AppendResult(stream_id, version, position)

    async def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        async with self._changing(stream_id, "reopening") as (conn, info):
            info = check_reopenable(stream_id, info)
            position = await self._mark(conn, stream_id, marker)
            await conn.execute(self._sql.reopen, (stream_id,), prepare=True)
            await self._call_hook(conn)
        return AppendResult(stream_id, info.version, position)

    async def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        async with self._changing(stream_id, "truncating") as (conn, info):
            cur = await conn.execute(self._sql.newest_snapshot, (stream_id,), prepare=True)
            newest = (await cur.fetchone() or (None,))[0]
            if not check_truncation(info, before, newest):
                return 0
            params = (stream_id, before)
            removed = (await conn.execute(self._sql.truncate_events, params, prepare=True)).rowcount
            await conn.execute(self._sql.truncate_snapshots, (stream_id, before - 1), prepare=True)
            await conn.execute(self._sql.set_first_version, (before, stream_id), prepare=True)
            await self._mark(conn, stream_id, marker)
            await self._call_hook(conn)
        return removed

    async def set_retention(
        self, stream_id: str, max_age: float | None, max_count: int | None
    ) -> None:
        async with self._changing(stream_id, "setting the retention of") as (conn, info):
            if info is None:
                raise InvalidEvent(f"stream {stream_id!r} holds no events; no retention was set")
            params = (max_age, max_count, stream_id)
            await conn.execute(self._sql.set_retention, params, prepare=True)

    async def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        rows = await self._query(
            self._sql.retained_streams, ("" if after is None else after, limit)
        )
        return [StreamInfo(*row) for row in rows]

    @asynccontextmanager
    async def _changing(
        self, stream_id: str, doing: str
    ) -> AsyncIterator[tuple[AsyncConnection[TupleRow], StreamInfo | None]]:
        """A transaction holding the stream's locks, and its info as locked; errors name
        what was being done."""
        self._check_writable()
        conn = await self._getconn()
        try:
            async with conn.transaction():
                await conn.execute(self._sql.lock_streams, ([stream_id],), prepare=True)
                yield conn, await _info(conn, self._sql.stream_info_locked, stream_id)
        except pg_errors.LockNotAvailable as e:
            raise LockTimeout(
                f"{doing} stream {stream_id!r}: waited more than {self._lock_timeout()} for a "
                "lock another session holds on it; nothing was changed"
            ) from e
        except psycopg.Error as e:
            if not conn.broken:
                raise self._failed(e, (stream_id,)) from e
            raise StoreError(
                f"PostgreSQL store at {self.location}: the connection failed while {doing} "
                f"stream {stream_id!r} ({e}); the change may have committed: look at the "
                "stream before doing it again"
            ) from e
        finally:
            await self.pool.putconn(conn)

    async def _mark(
        self, conn: AsyncConnection[TupleRow], stream_id: str, marker: EncodedEvent
    ) -> int:
        """Write the stream's next marker in the open transaction; its position."""
        cur = await conn.execute(self._sql.lowest_marker, (stream_id,), prepare=True)
        version = next_marker_version((await cur.fetchone() or (None,))[0])
        params: dict[str, Any] = {"stream": stream_id, "n": 1, "version": version}
        params.update(_arrays(PreparedAppend(stream_id, version, [marker])))
        cur = await conn.execute(self._sql.insert, params, prepare=True)
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _duplicate(
        self, conn: AsyncConnection[TupleRow], appends: Sequence[PreparedAppend]
    ) -> DuplicateEventId:
        """The error for an append that repeats an event id, naming it if it can."""
        ids = [event.event_id for append in appends for event in append.events]
        try:
            cur = await _execute(conn, self._sql.locate, (ids,))
            stored = {row[0] for row in await cur.fetchall()}
        except psycopg.Error:  # the append's error says enough
            stored = set()
        return duplicate_event_id(appends, stored)

    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        rows = await self._query(self._sql.locate, (list(event_ids),))
        return {row[0]: EventPlace(row[1], row[2], row[3]) for row in rows}

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        """The snapshot in and the stream's older ones out: one statement, so one round trip
        and one commit (a retry after a lost connection writes the same again)."""
        self._check_writable()
        stream_id, version = snapshot.stream_id, snapshot.version
        params = (stream_id, *snapshot, version, stream_id)
        await self._query(self._sql.write_snapshot, params, fetch=False)

    # -- reading ---------------------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        rows = await self._query(self._sql.stream_version, (stream_id,))
        return int(rows[0][0]) if rows else 0

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        last = _LAST_VERSION if to_version is None else to_version
        params = (stream_id, from_version, last, limit)
        return await self._query(
            self._sql.read_stream, params, rows=_stored, pool=self._read_pool()
        )

    async def replay_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int,
        aggregate_type: str | None = None,
    ) -> list[ReplayRow]:
        last = _LAST_VERSION if to_version is None else to_version
        pool = self._read_pool()
        if aggregate_type is None:
            params: tuple[Any, ...] = (stream_id, from_version, last, limit)
            return await self._query(self._sql.replay_stream, params, pool=pool)
        params = (stream_id, from_version, last, stream_id, aggregate_type, from_version, limit)
        rows: list[ReplayRow] = await self._query(self._sql.replay_stream_as, params, pool=pool)
        if not rows:  # none to replay, or the load is refused: the stream's row says which
            found = await self._query(self._sql.stream_info, (stream_id,), pool=pool)
            info = StreamInfo(*found[0]) if found else None
            check_load(stream_id, info, aggregate_type, from_version)
        return rows

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        rows = await self._query(self._sql.stream_info, (stream_id,))
        return StreamInfo(*rows[0]) if rows else None

    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        pool = self._read_pool()
        if types is None:
            params: tuple[Any, ...] = (after.transaction_id, after.position, limit)
            return await self._query(self._sql.read_all, params, rows=_stored, pool=pool)
        params = (after.transaction_id, after.position, list(types), limit)
        return await self._query(self._sql.read_all_types, params, rows=_stored, pool=pool)

    async def read_slices(
        self, after: Checkpoint, types: Sequence[str] | None, slices: Sequence[int], limit: int
    ) -> list[StoredEvent]:
        """The global log's next events of streams in ``slices``: the same horizon (nothing
        skipped), the same order (each stream's versions in order)."""
        if types is None:
            params: tuple[Any, ...] = (*after, list(slices), limit)
            return await self._query(self._sql.read_slices, params, rows=_stored)
        params = (*after, list(slices), list(types), limit)
        return await self._query(self._sql.read_slices_types, params, rows=_stored)

    async def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        params = ("" if after is None else after, limit)
        rows = await self._query(self._sql.streams, params, pool=self._read_pool())
        return [StreamVersion(row[0], row[1]) for row in rows]

    async def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        params = (stream_id, limit)
        rows = await self._query(self._sql.read_snapshots, params, pool=self._read_pool())
        return [SnapshotRecord(*row) for row in rows]

    # -- replicas --------------------------------------------------------------------------

    async def reading(self, lsn: int | None, primary: bool) -> AsyncPostgresRecorder:
        """A recorder whose reads all go to one server: the primary (``primary``, or a
        store without replicas), else a replica that has replayed WAL position ``lsn``
        (waiting up to ``replica_timeout`` for one; then the primary with
        ``replica_fallback=True``, else ``ReplicaBehind``); ``lsn`` -1 stands for the
        primary's WAL position now. It shares this recorder's pools; it is for reading
        only, and never needs closing."""
        await self._ensure_open()
        replicas = self.replicas
        if replicas is None or (not primary and lsn is None):
            pool = None if replicas is None else self._read_pool()
        elif primary:
            pool = self.pool
        else:
            assert lsn is not None
            if lsn < 0:  # as of now: past every commit made before this read
                ((lsn,),) = await self._query(self._sql.commit_lsn, ())
            fallback = self.pool if self.settings.replica_fallback else None
            pool = await replicas.at(lsn, self.settings.replica_timeout, fallback)
        if pool is None or pool is self._pinned:
            return self
        pinned = copy.copy(self)
        pinned._pinned = pool
        return pinned

    async def replica_lag(self) -> list[ReplicaLag]:
        """How far each replica trails the primary (none without replicas)."""
        if self.replicas is None:
            return []
        ((primary_lsn,),) = await self._query(self._sql.primary_lsn, ())
        return await self.replicas.lag(primary_lsn)

    def key_table(self) -> AsyncPostgresKeyTable:
        return AsyncPostgresKeyTable(self._query, self.schema, self._check_writable)

    # -- projections -----------------------------------------------------------------------

    def checkpoints(self, name: str) -> AsyncPostgresCheckpoints:
        return AsyncPostgresCheckpoints(self, name)

    async def projection_statuses(self) -> list[ProjectionStatus]:
        return await statuses(self)

    def slice_leases(
        self, name: str, worker: str, ranges: int, ttl: float
    ) -> AsyncPostgresSliceLeases:
        return AsyncPostgresSliceLeases(self, name, worker, ranges, ttl)

    async def sliced_statuses(self) -> list[SlicedStatus]:
        return await sliced_statuses(self)

    # -- tailing the global log ------------------------------------------------------------

    async def reader_lag(self) -> ReaderLag:
        """How many committed events ``read_all`` cannot return yet, and which transaction
        holds them back (see :class:`ReaderLag`): on the primary, or on the replica of a
        recorder made by :meth:`reading`."""
        query = self._sql.reader_lag
        ((held_back, pid, database, age),) = await self._query(query, (), pool=self._pinned)
        return ReaderLag(held_back, pid, age, database)

    async def wait_until_readable(self, seconds: float) -> bool:
        """Wait until ``read_all`` can return every event committed before this call.

        Read-your-writes for the global log: an event is readable once every transaction
        older than its own has ended in the store's database. Returns False if that takes
        longer than ``seconds`` (see :meth:`reader_lag` for who holds it back).
        """
        ((newest,),) = await self._query(self._sql.newest_transaction, ())
        deadline = time.monotonic() + seconds
        while newest:  # 0: nothing is held back
            ((horizon,),) = await self._query(self._sql.horizon, ())
            if horizon > newest:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    async def wait_for_events(self, seconds: float) -> bool:
        """Wait until an append to this store commits (True) or ``seconds`` pass (False).

        A hint for tailing readers, not a guarantee: an event can arrive without a wake-up
        (it was held back behind an older transaction) and a wake-up without a new event, so
        read with ``read_all`` after every return. The first call starts listening and returns
        True at once, since events may have been appended before it listened. Listening uses
        one connection of its own, outside the pool; concurrent callers take turns. Standbys
        pass no notifications on: with replicas, a wake-up also waits (within ``seconds``)
        until they have replayed what the primary had written then; a store opened on a
        standby itself cannot listen, and waits ``seconds`` (its readers poll).
        """
        started = time.monotonic()
        async with self._listen_lock:
            self._check_open()
            if self._standby:
                await asyncio.sleep(seconds)
                return False
            try:
                if self._listener is None or self._listener.closed:
                    await self._ensure_open()
                    listener = await self._connect()
                    try:
                        await listener.execute(self._sql.listen)
                    except pg_errors.ReadOnlySqlTransaction:  # a standby: no LISTEN there
                        await listener.close()
                        self._standby = True
                        return True
                    self._listener = listener
                    return True
                woke = False
                async for _ in self._listener.notifies(timeout=seconds, stop_after=1):
                    woke = True
                if woke and self.replicas is not None:
                    cur = await self._listener.execute(self._sql.commit_lsn)
                    ((lsn,),) = await cur.fetchall()
                    left = seconds - (time.monotonic() - started)
                    await self.replicas.caught_up(lsn, left)
                return woke
            except psycopg.Error as e:
                if self._listener is not None and self._listener.broken:  # listen anew next time
                    await self._listener.close()
                    self._listener = None
                raise StoreError(
                    f"PostgreSQL store at {self.location}: listening for appends failed: {e}"
                ) from e


async def _info(conn: AsyncConnection[Any], query: str, stream_id: str) -> StreamInfo | None:
    cur = await _execute(conn, query, (stream_id,))
    row = await cur.fetchone()
    return None if row is None else StreamInfo(*row)


async def _execute(
    conn: AsyncConnection[Any], query: str, params: Any = None
) -> AsyncCursor[TupleRow]:
    """Run a statement on a plain cursor of ``conn`` (tuple rows, server-side binding),
    whatever cursor and row factories the connection has: the caller's may have others
    (Django's binds on the client side)."""
    cur = AsyncCursor(conn, row_factory=tuple_row)
    await cur.execute(query, params, prepare=True)
    return cur


def _stated(expected: int) -> int:
    """An expected version as an append stated it (``ExpectedVersion.ANY``, or a number)."""
    return ExpectedVersion(expected) if expected <= 0 else expected


def _claim_kind(expected: int) -> int:
    """Which claim an append makes: 0 (ANY) upserts its stream, 1 (NO_STREAM) creates it,
    2 (an exact version, or STREAM_EXISTS) updates it."""
    return 0 if expected == ExpectedVersion.ANY else 1 if expected == 0 else 2


def _claim_params(append: PreparedAppend) -> dict[str, Any]:
    """The parameters every claim of a stream takes."""
    return {
        "stream": append.stream_id,
        "n": len(append.events),
        "expected": append.expected_version,
        "aggregate": append.aggregate_type,
    }


def _arrays(append: PreparedAppend) -> dict[str, list[Any]]:
    """The columns of an append's events, one array each: a batch travels in one statement."""
    ids, types, versions, encodings, datas, metadatas = zip(*append.events, strict=True)
    return {
        "ids": list(ids),
        "types": list(types),
        "svs": list(versions),
        "encs": list(encodings),
        "data": list(datas),
        "meta": list(metadatas),
    }


def _names(appends: Sequence[PreparedAppend]) -> str:
    """``stream 'a'`` or ``streams 'a', 'b', 'c' and 2 more``: for messages."""
    shown = ", ".join(repr(append.stream_id) for append in appends[:3])
    more = f" and {len(appends) - 3} more" if len(appends) > 3 else ""
    return f"stream{'s' if len(appends) > 1 else ''} {shown}{more}"
