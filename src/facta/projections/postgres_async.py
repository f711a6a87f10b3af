"""Projection checkpoints for PostgreSQL: tables in the store's schema, beside the read model.

A runner has its own connection (outside the store's pool, so it never starves it), with
``search_path`` set to the store's schema: handlers' unqualified table names live beside the
events. Each batch of events is applied and the checkpoint moved in one transaction, so an
event's effect happens exactly once whenever the process dies. A session advisory lock keeps
each projection to one runner; the server drops it when the runner's connection ends.
"""

from __future__ import annotations

import asyncio  # sync: import threading, time
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from facta.backends.postgres_async import AsyncPostgresEventStore
from facta.errors import StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.projections.checkpoints_async import AsyncCheckpoints
from facta.projections.errors import ProjectionLocked
from facta.projections.status import DeadLetter, ProjectionStatus, shown_state
from facta.store_async import AsyncEventStore

__all__ = ["AsyncPostgresCheckpoints"]

TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.projection_checkpoints (
    name           text PRIMARY KEY,
    transaction_id bigint NOT NULL,
    position       bigint NOT NULL,
    state          text NOT NULL,    -- running, rebuilding, stopped or failed
    types          text[] NOT NULL,  -- the type names it reads (for its lag)
    error          text,             -- why it failed, if it did
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.projection_dead_letters (
    projection     text NOT NULL,
    transaction_id bigint NOT NULL,
    position       bigint NOT NULL,
    stream_id      text NOT NULL,
    version        bigint NOT NULL,
    event_id       uuid NOT NULL,
    type           text NOT NULL,
    error          text NOT NULL,
    failed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, transaction_id, position)
)"""
_START = """
INSERT INTO projection_checkpoints (name, transaction_id, position, state, types)
VALUES (%(name)s, 0, 0, %(state)s, %(types)s)
ON CONFLICT (name) DO UPDATE SET state = excluded.state, types = excluded.types, error = NULL,
    updated_at = now()
RETURNING transaction_id, position"""
_SAVE = """
UPDATE projection_checkpoints SET transaction_id = %s, position = %s, updated_at = now()
WHERE name = %s AND transaction_id = %s AND position = %s"""
_RESET = """
UPDATE projection_checkpoints SET transaction_id = 0, position = 0, updated_at = now()
WHERE name = %s"""
_PARK = """
INSERT INTO projection_dead_letters
    (projection, transaction_id, position, stream_id, version, event_id, type, error)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (projection, transaction_id, position) DO UPDATE SET error = excluded.error,
    failed_at = now()"""
_DEAD_LETTERS = """
SELECT stream_id, version, position, transaction_id, event_id, type, error, failed_at
FROM projection_dead_letters WHERE projection = %s ORDER BY transaction_id, position"""
_FINISH = """
UPDATE projection_checkpoints SET state = %s, error = %s, updated_at = now() WHERE name = %s"""
_LAG = """
SELECT count(*) FROM events WHERE (transaction_id, position) > (%s, %s) AND type = ANY(%s)"""
_STATUS = """
SELECT c.name, c.transaction_id, c.position, c.state, c.error, (
    SELECT count(*) FROM events e WHERE (e.transaction_id, e.position) > (c.transaction_id,
        c.position) AND e.type = ANY(c.types)
), EXISTS (
    SELECT FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid::bigint = %s AND l.objid::bigint = %s
)
FROM projection_checkpoints c WHERE c.name = %s"""


class AsyncPostgresCheckpoints(AsyncCheckpoints):
    """Checkpoints in the ``projection_checkpoints`` table of the store's schema."""

    def __init__(self, store: AsyncEventStore, name: str) -> None:
        assert isinstance(store, AsyncPostgresEventStore)
        super().__init__(store, name)
        self.pg = store
        self._key = lock_key(store.schema, name)
        self._conn: AsyncConnection[TupleRow] | None = None

    @classmethod
    async def statuses(cls, store: AsyncEventStore) -> list[ProjectionStatus]:
        assert isinstance(store, AsyncPostgresEventStore)
        result = []
        try:
            async with store.connection() as conn, conn.transaction():
                await _use_schema(conn, store.schema, local=True)
                cur = await conn.execute("SELECT to_regclass('projection_checkpoints')")
                found = await cur.fetchone()
                names: list[str] = []
                if found is not None and found[0] is not None:
                    cur = await conn.execute("SELECT name FROM projection_checkpoints ORDER BY 1")
                    names = [row[0] for row in await cur.fetchall()]
                for name in names:
                    classid, objid = _lock_parts(lock_key(store.schema, name))
                    cur = await conn.execute(_STATUS, (classid, objid, name))
                    row = await cur.fetchone()
                    assert row is not None
                    _, x, p, state, error, lag, held = row
                    checkpoint = Checkpoint(x, p)
                    result.append(
                        ProjectionStatus(name, checkpoint, lag, shown_state(state, held), error)
                    )
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL projections in schema {store.schema!r}: {e}") from e
        return result

    async def open(self, wait: bool, poll_interval: float) -> None:
        pool = self.pg.pool
        try:
            async with self.pg.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (lock_key(self.pg.schema, ""),)
                )
                await conn.execute(sql.SQL(TABLES).format(schema=sql.Identifier(self.pg.schema)))
            conninfo, kwargs = pool.conninfo, pool.kwargs or {}
            assert isinstance(conninfo, str)
            assert isinstance(kwargs, dict)
            self._conn = await AsyncConnection.connect(conninfo, **kwargs)
            await self._conn.set_autocommit(True)
            await _use_schema(self._conn, self.pg.schema, local=False)
            await self._conn.execute("SET timezone = 'UTC'")
            while True:
                cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
                row = await cur.fetchone()
                if row is not None and row[0]:
                    return
                if not wait:
                    raise ProjectionLocked(
                        self.name, f"another session holds its advisory lock {self._key}"
                    )
                await asyncio.sleep(poll_interval)
        except psycopg.Error as e:
            await self.close()
            raise StoreError(f"projection {self.name!r} cannot open its checkpoints: {e}") from e
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:  # unlock before closing: the server drops a closed session's locks a bit later
                if not conn.broken:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            except psycopg.Error:
                pass  # closing ends the session, and its lock with it
            finally:
                await conn.close()

    def _connection(self) -> AsyncConnection[TupleRow]:
        if self._conn is None:
            raise StoreError(f"projection {self.name!r}: its checkpoints are not open")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        conn = self._connection()
        try:
            async with conn.transaction():
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"projection {self.name!r}: {e}") from e

    async def _execute(self, query: str, params: Any) -> psycopg.AsyncCursor[TupleRow]:
        try:
            return await self._connection().execute(query, params)
        except psycopg.Error as e:
            raise StoreError(f"projection {self.name!r}: {e}") from e

    async def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        cur = await self._execute(_START, {"name": self.name, "state": state, "types": list(types)})
        row = await cur.fetchone()
        assert row is not None
        return Checkpoint(row[0], row[1])

    async def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        cur = await self._execute(_SAVE, (*after, self.name, *before))
        if cur.rowcount != 1:
            raise StoreError(
                f"projection {self.name!r}: its checkpoint is no longer {before}; another runner "
                "moved it; nothing of this batch was kept"
            )

    async def reset(self, connection: Any) -> None:
        await self._execute(_RESET, (self.name,))
        await self._execute(
            "DELETE FROM projection_dead_letters WHERE projection = %s", (self.name,)
        )

    async def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        await self._execute(
            _PARK,
            (
                self.name,
                event.transaction_id,
                event.position,
                event.stream_id,
                event.version,
                event.event_id,
                event.type,
                error,
            ),
        )

    async def dead_letters(self) -> list[DeadLetter]:
        cur = await self._execute(_DEAD_LETTERS, (self.name,))
        return [DeadLetter(*row) for row in await cur.fetchall()]

    async def finish(self, state: str, error: str | None = None) -> None:
        await self._execute(_FINISH, (state, error, self.name))

    async def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        if not types:
            return 0
        cur = await self._execute(_LAG, (*after, list(types)))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def wait(self, seconds: float, stopping: asyncio.Event) -> None:
        if not stopping.is_set():
            await self.pg.wait_for_events(seconds)


def lock_key(schema: str, name: str) -> int:
    """The advisory lock (a signed 64-bit key) of projection ``name`` in ``schema``."""
    digest = hashlib.blake2b(f"facta.projection\0{schema}\0{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _lock_parts(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: (classid, objid), high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


async def _use_schema(conn: AsyncConnection[TupleRow], schema: str, *, local: bool) -> None:
    """Point ``search_path`` at the store's schema: read models live beside the events."""
    statement = "SET LOCAL search_path TO {}, public" if local else "SET search_path TO {}, public"
    await conn.execute(sql.SQL(statement).format(sql.Identifier(schema)))
