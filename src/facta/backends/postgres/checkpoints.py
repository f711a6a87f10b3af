# WARNING: generated from src/facta/backends/postgres/checkpoints_async.py by tools/gen_sync.py; do not edit.
"""Projection (and inbox) checkpoints on PostgreSQL: tables in the store's schema, beside the
read model.

A runner has its own connection (outside the store's pool, so it never starves it), with
``search_path`` set to the store's schema: handlers' unqualified table names live beside the
events. Each batch of events is applied and the checkpoint moved in one transaction, so an
event's effect happens exactly once whenever the process dies. A session advisory lock keeps
each projection to one runner; the server drops it when the runner's connection ends. The
tables, ``facta_projections`` and ``facta_dead_letters`` (and the inboxes'
``facta_inbox_streams`` and ``facta_inbox_held``), come from the store's migrations.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from psycopg import Connection, sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from facta.errors import ProjectionLocked, StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.recorder import Checkpoints
from facta.records import DeadLetter, HeldMessage, InboxStream, ProjectionStatus, shown_state

if TYPE_CHECKING:
    from facta.backends.postgres.recorder import PostgresRecorder

__all__ = ["PostgresCheckpoints", "lock_key", "statuses"]

_START = """
INSERT INTO {schema}.facta_projections (name, transaction_id, position, state, types)
VALUES (%(name)s, 0, 0, %(state)s, %(types)s)
ON CONFLICT (name) DO UPDATE SET state = excluded.state, types = excluded.types, error = NULL,
    updated_at = now()
RETURNING transaction_id, position"""
# RETURNING: the row is fetched, which in pipeline mode also ends the batch's pipeline, so a
# handler's failing statement surfaces here at the latest (rowcount would still be -1).
_SAVE = """
UPDATE {schema}.facta_projections SET transaction_id = %s, position = %s, updated_at = now()
WHERE name = %s AND transaction_id = %s AND position = %s
RETURNING 1"""
_RESET = """
UPDATE {schema}.facta_projections SET transaction_id = 0, position = 0, updated_at = now()
WHERE name = %s"""
_FORGET = "DELETE FROM {schema}.facta_dead_letters WHERE projection = %s"
_PARK = """
INSERT INTO {schema}.facta_dead_letters
    (projection, transaction_id, position, stream_id, version, event_id, type, error)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (projection, transaction_id, position) DO UPDATE SET error = excluded.error,
    failed_at = now()"""
_DEAD_LETTERS = """
SELECT stream_id, version, position, transaction_id, event_id, type, error, failed_at
FROM {schema}.facta_dead_letters WHERE projection = %s ORDER BY transaction_id, position"""
_FINISH = """
UPDATE {schema}.facta_projections SET state = %s, error = %s, updated_at = now()
WHERE name = %s"""
_LAG = """
SELECT count(*) FROM {schema}.facta_events
WHERE (transaction_id, position) > (%s, %s) AND type = ANY(%s)"""
# The two bounds on transaction_id change no count (the row comparison implies the first, no
# visible row is at or past the snapshot's xmax) but give the planner a range: without them it
# took each lag for a third of the table and counted by a sequential scan (seconds at 10M
# events, bench/growth.py), where the index holds only the few rows past the checkpoint.
_STATUSES = """
SELECT c.name, c.transaction_id, c.position, c.state, c.error, (
    SELECT count(*) FROM {schema}.facta_events e
    WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
    AND e.transaction_id >= c.transaction_id
    AND e.transaction_id < pg_snapshot_xmax(pg_current_snapshot())::text::bigint
    AND e.type = ANY(c.types)
), (SELECT count(*) FROM {schema}.facta_dead_letters d WHERE d.projection = c.name)
FROM {schema}.facta_projections c ORDER BY c.name"""
_INBOX_STREAMS = """
SELECT stream_id, version, event_id, marker FROM {schema}.facta_inbox_streams
WHERE inbox = %s AND stream_id = ANY(%s)"""
# One statement: the new versions, and the parked messages they leave behind released.
_SAVE_INBOX_STREAMS = """
WITH marks AS (
    SELECT * FROM unnest(%(streams)s::text[], %(versions)s::bigint[], %(ids)s::uuid[],
                         %(markers)s::bigint[])
        AS m(stream_id, version, event_id, marker)
), released AS (
    DELETE FROM {schema}.facta_inbox_held h USING marks m
    WHERE h.inbox = %(inbox)s AND h.error IS NULL AND h.stream_id = m.stream_id
        AND h.version <= m.version
)
INSERT INTO {schema}.facta_inbox_streams (inbox, stream_id, version, event_id, marker)
SELECT %(inbox)s, stream_id, version, event_id, marker FROM marks
ON CONFLICT (inbox, stream_id) DO UPDATE SET version = excluded.version,
    event_id = excluded.event_id, marker = excluded.marker, updated_at = now()"""
_HOLD = """
INSERT INTO {schema}.facta_inbox_held
    (inbox, stream_id, version, event_id, subject, headers, data, error, held_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"""
_HELD_COLUMNS = "stream_id, version, event_id, subject, headers, data, error, held_at"
_PARKED = f"""
SELECT {_HELD_COLUMNS} FROM {{schema}}.facta_inbox_held
WHERE inbox = %s AND stream_id = %s AND error IS NULL ORDER BY version"""
_HELD_MESSAGES = f"""
SELECT {_HELD_COLUMNS} FROM {{schema}}.facta_inbox_held WHERE inbox = %s ORDER BY id"""
# The bigint advisory locks held in this database, as pg_locks shows them: high, low 32 bits.
_HELD = """
SELECT classid::bigint, objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND granted
AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


class _Queries(NamedTuple):
    start: str
    save: str
    reset: str
    forget: str
    park: str
    dead_letters: str
    finish: str
    lag: str
    statuses: str
    use_schema: str
    inbox_streams: str
    save_inbox_streams: str
    hold: str
    parked: str
    held: str


@cache
def _queries(schema: str) -> _Queries:
    """The checkpoint statements of one store, rendered for its schema."""
    schema_id = sql.Identifier(schema)

    def text(template: str) -> str:
        return sql.SQL(template).format(schema=schema_id).as_string()

    return _Queries(
        start=text(_START),
        save=text(_SAVE),
        reset=text(_RESET),
        forget=text(_FORGET),
        park=text(_PARK),
        dead_letters=text(_DEAD_LETTERS),
        finish=text(_FINISH),
        lag=text(_LAG),
        statuses=text(_STATUSES),
        use_schema=text("SET search_path TO {schema}, public"),
        inbox_streams=text(_INBOX_STREAMS),
        save_inbox_streams=text(_SAVE_INBOX_STREAMS),
        hold=text(_HOLD),
        parked=text(_PARKED),
        held=text(_HELD_MESSAGES),
    )


class PostgresCheckpoints(Checkpoints):
    """Checkpoints in the ``facta_projections`` table of the store's schema."""

    def __init__(self, recorder: PostgresRecorder, name: str) -> None:
        super().__init__(name)
        self._recorder = recorder
        self._sql = _queries(recorder.schema)
        self._key = lock_key(recorder.schema, name)
        self._conn: Connection[TupleRow] | None = None

    def open(self, wait: bool, poll_interval: float) -> None:
        recorder = self._recorder
        recorder._check_writable()  # a runner writes its checkpoint
        try:
            recorder._ensure_open()  # the schema is checked (and migrated) first
            self._conn = conn = recorder._connect()
            conn.execute(self._sql.use_schema)
            while True:
                cur = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
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
        """A transaction on the runner's connection. Whatever fails in it because the
        connection did (a handler's statement included) is a ``StoreError``: the database's
        failure, not the handler's."""
        conn = self._connection()
        try:
            with conn.transaction():
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"projection {self.name!r}: {e}") from e
        except Exception as e:
            if not conn.broken:
                raise
            cause = e.__cause__ or e  # a handler's failure comes wrapped by the runner
            raise StoreError(f"projection {self.name!r}: the connection failed: {cause}") from e

    def _execute(self, query: str, params: Any) -> psycopg.Cursor[TupleRow]:
        try:
            return self._connection().execute(query, params)
        except psycopg.Error as e:
            raise StoreError(f"projection {self.name!r}: {e}") from e

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        params = {"name": self.name, "state": state, "types": list(types)}
        cur = self._execute(self._sql.start, params)
        row = cur.fetchone()
        assert row is not None
        return Checkpoint(row[0], row[1])

    def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        cur = self._execute(self._sql.save, (*after, self.name, *before))
        try:
            saved = cur.fetchone()
        except psycopg.Error as e:  # in pipeline mode: a statement before it failed
            raise StoreError(f"projection {self.name!r}: {e}") from e
        if saved is None:
            raise StoreError(
                f"projection {self.name!r}: its checkpoint is no longer {before}; another runner "
                "moved it; nothing of this batch was kept"
            )

    def reset(self, connection: Any) -> None:
        self._execute(self._sql.reset, (self.name,))
        self._execute(self._sql.forget, (self.name,))

    def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        self._execute(
            self._sql.park,
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
        cur = self._execute(self._sql.dead_letters, (self.name,))
        return [DeadLetter(*row) for row in cur.fetchall()]

    def finish(self, state: str, error: str | None = None) -> None:
        self._execute(self._sql.finish, (state, error, self.name))

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        if not types:
            return 0
        cur = self._execute(self._sql.lag, (*after, list(types)))
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        if not stopping.is_set():
            self._recorder.wait_for_events(seconds)

    # -- inboxes ---------------------------------------------------------------------------

    def inbox_streams(self, connection: Any, stream_ids: Collection[str]) -> dict[str, InboxStream]:
        if not stream_ids:
            return {}
        cur = self._execute(self._sql.inbox_streams, (self.name, list(stream_ids)))
        return {row[0]: InboxStream(*row) for row in cur.fetchall()}

    def save_inbox_streams(self, connection: Any, streams: Sequence[InboxStream]) -> None:
        if not streams:
            return
        params = {
            "inbox": self.name,
            "streams": [s.stream_id for s in streams],
            "versions": [s.version for s in streams],
            "ids": [s.event_id for s in streams],
            "markers": [s.marker for s in streams],
        }
        self._execute(self._sql.save_inbox_streams, params)

    def hold(self, connection: Any, message: HeldMessage) -> None:
        self._execute(
            self._sql.hold,
            (
                self.name,
                message.stream_id,
                message.version,
                message.event_id,
                message.subject,
                Jsonb(message.headers),
                message.data,
                message.error,
                message.held_at,
            ),
        )

    def parked(self, connection: Any, stream_id: str) -> list[HeldMessage]:
        cur = self._execute(self._sql.parked, (self.name, stream_id))
        return [_held(row) for row in cur.fetchall()]

    def held(self) -> list[HeldMessage]:
        if self._conn is not None:
            cur = self._execute(self._sql.held, (self.name,))
            return [_held(row) for row in cur.fetchall()]
        recorder = self._recorder
        try:
            with recorder.connection() as conn:  # not open: a status of a running inbox
                cur = conn.execute(self._sql.held, (self.name,))
                rows = cur.fetchall()
        except psycopg.Error as e:
            raise StoreError(f"inbox {self.name!r}: {e}") from e
        return [_held(row) for row in rows]


def _held(row: tuple[Any, ...]) -> HeldMessage:
    stream_id, version, event_id, subject, headers, data, error, held_at = row
    return HeldMessage(
        stream_id, version, event_id, subject, dict(headers), bytes(data), error, held_at
    )


def statuses(recorder: PostgresRecorder) -> list[ProjectionStatus]:
    """Every projection with a checkpoint in the recorder's store, by name."""
    try:
        with recorder.connection() as conn, conn.transaction():
            # The plan is estimated from tables autovacuum may not have analyzed yet, and
            # JIT compiling it took 0.2-0.5 s where running it takes a millisecond.
            conn.execute("SET LOCAL jit = off")
            cur = conn.execute(_queries(recorder.schema).statuses)
            rows = cur.fetchall()
            cur = conn.execute(_HELD)
            held = {(high << 32) | low for high, low in cur.fetchall()}
    except psycopg.Error as e:
        raise StoreError(f"PostgreSQL store at {recorder.location}: projections: {e}") from e
    result = []
    for name, transaction_id, position, state, error, lag, parked in rows:
        running = (lock_key(recorder.schema, name) & 0xFFFF_FFFF_FFFF_FFFF) in held
        checkpoint = Checkpoint(transaction_id, position)
        shown = shown_state(state, running)
        result.append(ProjectionStatus(name, checkpoint, lag, shown, error, parked))
    return result


def lock_key(schema: str, name: str) -> int:
    """The advisory lock (a signed 64-bit key) of projection ``name`` in ``schema``."""
    digest = hashlib.blake2b(f"facta.projection\0{schema}\0{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
