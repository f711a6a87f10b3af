# WARNING: generated from src/facta/projections/postgres_async.py by tools/gen_sync.py; do not edit.
"""Projection checkpoints for PostgreSQL: tables in the store's schema, beside the read model.

A runner has its own connection (outside the store's pool, so it never starves it), with
``search_path`` set to the store's schema: handlers' unqualified table names live beside the
events. Each batch of events is applied and the checkpoint moved in one transaction, so an
event's effect happens exactly once whenever the process dies. A session advisory lock keeps
each projection to one runner; the server drops it when the runner's connection ends.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.rows import TupleRow

from facta.backends.postgres import PostgresEventStore
from facta.errors import StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.projections.checkpoints import Checkpoints
from facta.projections.errors import ProjectionLocked
from facta.projections.status import DeadLetter, ProjectionStatus, shown_state
from facta.store import EventStore

__all__ = ["PostgresCheckpoints"]

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


class PostgresCheckpoints(Checkpoints):
    """Checkpoints in the ``projection_checkpoints`` table of the store's schema."""

    def __init__(self, store: EventStore, name: str) -> None:
        assert isinstance(store, PostgresEventStore)
        super().__init__(store, name)
        self.pg = store
        self._key = lock_key(store.schema, name)
        self._conn: Connection[TupleRow] | None = None

    @classmethod
    def statuses(cls, store: EventStore) -> list[ProjectionStatus]:
        assert isinstance(store, PostgresEventStore)
        result = []
        try:
            with store.connection() as conn, conn.transaction():
                _use_schema(conn, store.schema, local=True)
                cur = conn.execute("SELECT to_regclass('projection_checkpoints')")
                found = cur.fetchone()
                names: list[str] = []
                if found is not None and found[0] is not None:
                    cur = conn.execute("SELECT name FROM projection_checkpoints ORDER BY 1")
                    names = [row[0] for row in cur.fetchall()]
                for name in names:
                    classid, objid = _lock_parts(lock_key(store.schema, name))
                    cur = conn.execute(_STATUS, (classid, objid, name))
                    row = cur.fetchone()
                    assert row is not None
                    _, x, p, state, error, lag, held = row
                    checkpoint = Checkpoint(x, p)
                    result.append(
                        ProjectionStatus(name, checkpoint, lag, shown_state(state, held), error)
                    )
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL projections in schema {store.schema!r}: {e}") from e
        return result

    def open(self, wait: bool, poll_interval: float) -> None:
        pool = self.pg.pool
        try:
            with self.pg.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.pg.schema, ""),))
                conn.execute(sql.SQL(TABLES).format(schema=sql.Identifier(self.pg.schema)))
            conninfo, kwargs = pool.conninfo, pool.kwargs or {}
            assert isinstance(conninfo, str)
            assert isinstance(kwargs, dict)
            self._conn = Connection.connect(conninfo, **kwargs)
            self._conn.set_autocommit(True)
            _use_schema(self._conn, self.pg.schema, local=False)
            self._conn.execute("SET timezone = 'UTC'")
            while True:
                cur = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
                row = cur.fetchone()
                if row is not None and row[0]:
                    return
                if not wait:
                    raise ProjectionLocked(
                        self.name, f"another session holds its advisory lock {self._key}"
                    )
                time.sleep(poll_interval)
        except psycopg.Error as e:
            self.close()
            raise StoreError(f"projection {self.name!r} cannot open its checkpoints: {e}") from e
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:  # unlock before closing: the server drops a closed session's locks a bit later
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            except psycopg.Error:
                pass  # closing ends the session, and its lock with it
            finally:
                conn.close()

    def _connection(self) -> Connection[TupleRow]:
        if self._conn is None:
            raise StoreError(f"projection {self.name!r}: its checkpoints are not open")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[Connection[TupleRow]]:
        conn = self._connection()
        try:
            with conn.transaction():
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"projection {self.name!r}: {e}") from e

    def _execute(self, query: str, params: Any) -> psycopg.Cursor[TupleRow]:
        try:
            return self._connection().execute(query, params)
        except psycopg.Error as e:
            raise StoreError(f"projection {self.name!r}: {e}") from e

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        cur = self._execute(_START, {"name": self.name, "state": state, "types": list(types)})
        row = cur.fetchone()
        assert row is not None
        return Checkpoint(row[0], row[1])

    def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        cur = self._execute(_SAVE, (*after, self.name, *before))
        if cur.rowcount != 1:
            raise StoreError(
                f"projection {self.name!r}: its checkpoint is no longer {before}; another runner "
                "moved it; nothing of this batch was kept"
            )

    def reset(self, connection: Any) -> None:
        self._execute(_RESET, (self.name,))
        self._execute("DELETE FROM projection_dead_letters WHERE projection = %s", (self.name,))

    def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        self._execute(
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

    def dead_letters(self) -> list[DeadLetter]:
        cur = self._execute(_DEAD_LETTERS, (self.name,))
        return [DeadLetter(*row) for row in cur.fetchall()]

    def finish(self, state: str, error: str | None = None) -> None:
        self._execute(_FINISH, (state, error, self.name))

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        if not types:
            return 0
        cur = self._execute(_LAG, (*after, list(types)))
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        if not stopping.is_set():
            self.pg.wait_for_events(seconds)


def lock_key(schema: str, name: str) -> int:
    """The advisory lock (a signed 64-bit key) of projection ``name`` in ``schema``."""
    digest = hashlib.blake2b(f"facta.projection\0{schema}\0{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _lock_parts(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: (classid, objid), high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def _use_schema(conn: Connection[TupleRow], schema: str, *, local: bool) -> None:
    """Point ``search_path`` at the store's schema: read models live beside the events."""
    statement = "SET LOCAL search_path TO {}, public" if local else "SET search_path TO {}, public"
    conn.execute(sql.SQL(statement).format(sql.Identifier(schema)))
