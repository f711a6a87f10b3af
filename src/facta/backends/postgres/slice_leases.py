# WARNING: generated from src/facta/backends/postgres/slice_leases_async.py by tools/gen_sync.py; do not edit.
"""The leases of a sliced projection on PostgreSQL (the sync twin is generated).

Tables ``facta_sliced_projections``, ``facta_slice_leases`` and ``facta_projection_workers``
(migration 0006) sit beside the read model. A worker takes free or expired ranges with
``SELECT ... FOR UPDATE SKIP LOCKED`` (workers never wait for one another), raising each
range's fencing token; it moves a range's checkpoint in its batch's transaction with an
``UPDATE`` that matches only while owner and token are still its own, so a worker that lost
a range gets no row, rolls back and lets it go. Every worker holds the projection's advisory
lock in shared mode, so a plain runner (which takes it alone) and workers never mix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from psycopg import Connection, sql
from psycopg.rows import TupleRow

from facta.backends.postgres.checkpoints import PostgresCheckpoints, lock_key
from facta.errors import ConfigurationError, LeaseLost, ProjectionLocked, StoreError
from facta.events import Checkpoint
from facta.records import HeldRange, RangeStatus, SlicedStatus, shown_state
from facta.slice_leases import SliceLeases
from facta.slices import SliceRange, split_slices

if TYPE_CHECKING:
    from facta.backends.postgres.recorder import PostgresRecorder

__all__ = ["PostgresSliceLeases", "sliced_statuses"]

_TTL = "%(ttl)s * interval '1 second'"
_START = """
INSERT INTO {schema}.facta_sliced_projections (name, ranges, types, state)
VALUES (%(name)s, %(ranges)s, %(types)s, %(state)s)
ON CONFLICT (name) DO UPDATE SET types = excluded.types, state = excluded.state, error = NULL,
    updated_at = now()
RETURNING ranges"""
_ADD_RANGES = """
INSERT INTO {schema}.facta_slice_leases (projection, first_slice, last_slice)
SELECT %s, f, l FROM unnest(%s::smallint[], %s::smallint[]) AS r(f, l)
ON CONFLICT DO NOTHING"""
_HEARTBEAT = f"""
INSERT INTO {{schema}}.facta_projection_workers (projection, worker, expires_at)
VALUES (%(name)s, %(worker)s, now() + {_TTL})
ON CONFLICT (projection, worker) DO UPDATE SET expires_at = excluded.expires_at"""
_BURY = """
DELETE FROM {schema}.facta_projection_workers WHERE projection = %(name)s AND expires_at < now()"""
_LIVE = "SELECT count(*) FROM {schema}.facta_projection_workers WHERE projection = %(name)s"
_HELD_COLUMNS = "l.first_slice, l.last_slice, l.token, l.transaction_id, l.position"
_RENEW = f"""
UPDATE {{schema}}.facta_slice_leases AS l SET expires_at = now() + {_TTL}
WHERE l.projection = %(name)s AND l.owner = %(worker)s
RETURNING {_HELD_COLUMNS}"""
_GIVE_BACK = """
UPDATE {schema}.facta_slice_leases SET owner = NULL, expires_at = 'epoch', updated_at = now()
WHERE projection = %(name)s AND owner = %(worker)s AND first_slice = ANY(%(firsts)s::smallint[])"""
_TAKE = f"""
WITH free AS (
    SELECT first_slice FROM {{schema}}.facta_slice_leases
    WHERE projection = %(name)s AND (owner IS NULL OR expires_at < now())
    ORDER BY first_slice LIMIT %(wanted)s FOR UPDATE SKIP LOCKED
)
UPDATE {{schema}}.facta_slice_leases AS l SET owner = %(worker)s, token = l.token + 1,
    expires_at = now() + {_TTL}, updated_at = now()
FROM free WHERE l.projection = %(name)s AND l.first_slice = free.first_slice
RETURNING {_HELD_COLUMNS}"""
_LEAVE = """
DELETE FROM {schema}.facta_projection_workers WHERE projection = %(name)s AND worker = %(worker)s"""
# The guarded move: a row only while owner and token are this worker's; the count is fetched,
# which in pipeline mode also ends the batch's pipeline (a failed statement surfaces here).
_SAVE = f"""
WITH moved AS (
    UPDATE {{schema}}.facta_slice_leases AS l SET transaction_id = %(txid)s,
        position = %(position)s, expires_at = now() + {_TTL}, updated_at = now()
    FROM unnest(%(firsts)s::smallint[], %(tokens)s::bigint[]) AS h(first_slice, token)
    WHERE l.projection = %(name)s AND l.first_slice = h.first_slice AND l.token = h.token
        AND l.owner = %(worker)s
    RETURNING 1
)
SELECT count(*) FROM moved"""
# A batch's transaction starts by locking the held ranges' rows, while the tokens are still
# this worker's: a rebuild (which locks them all first) then waits for the batch, and the
# batch for the rebuild, always in that order (no deadlock, no write after a reset).
_FENCE = """
SELECT count(*) FROM (
    SELECT FROM {schema}.facta_slice_leases AS l
    JOIN unnest(%(firsts)s::smallint[], %(tokens)s::bigint[]) AS h(first_slice, token)
        ON l.first_slice = h.first_slice AND l.token = h.token
    WHERE l.projection = %(name)s AND l.owner = %(worker)s
    FOR NO KEY UPDATE OF l
) AS fenced"""
_LOCK_ALL = """
SELECT count(*) FROM (
    SELECT FROM {schema}.facta_slice_leases WHERE projection = %s ORDER BY first_slice FOR UPDATE
) AS locked"""
_RESET = """
UPDATE {schema}.facta_slice_leases SET transaction_id = 0, position = 0, token = token + 1,
    owner = NULL, expires_at = 'epoch', updated_at = now()
WHERE projection = %s"""
_FINISH = """
UPDATE {schema}.facta_sliced_projections SET state = %s, error = %s, updated_at = now()
WHERE name = %s"""
_LAG = """
SELECT count(*) FROM {schema}.facta_slice_leases AS l JOIN {schema}.facta_events AS e
    ON e.slice BETWEEN l.first_slice AND l.last_slice
    AND (e.transaction_id, e.position) > (l.transaction_id, l.position)
WHERE l.projection = %s AND l.first_slice = ANY(%s::smallint[]) AND e.type = ANY(%s::text[])"""
_PROJECTIONS = """
SELECT p.name, p.state, p.error, p.types,
    ARRAY(SELECT w.worker FROM {schema}.facta_projection_workers AS w
          WHERE w.projection = p.name AND w.expires_at >= now() ORDER BY w.worker),
    (SELECT count(*) FROM {schema}.facta_dead_letters AS d WHERE d.projection = p.name)
FROM {schema}.facta_sliced_projections AS p WHERE %s::text IS NULL OR p.name = %s
ORDER BY p.name"""
_RANGES = """
SELECT l.projection, l.first_slice, l.last_slice, l.owner, l.token, l.expires_at,
    l.transaction_id, l.position, (
        SELECT count(*) FROM {schema}.facta_events AS e
        WHERE e.slice BETWEEN l.first_slice AND l.last_slice
        AND (e.transaction_id, e.position) > (l.transaction_id, l.position)
        AND e.type = ANY(p.types))
FROM {schema}.facta_slice_leases AS l JOIN {schema}.facta_sliced_projections AS p
    ON p.name = l.projection
WHERE %s::text IS NULL OR l.projection = %s
ORDER BY l.projection, l.first_slice"""


class _Queries(NamedTuple):
    start: str
    add_ranges: str
    heartbeat: str
    bury: str
    live: str
    renew: str
    give_back: str
    take: str
    leave: str
    save: str
    fence: str
    lock_all: str
    reset: str
    finish: str
    lag: str
    projections: str
    ranges: str


@cache
def _queries(schema: str) -> _Queries:
    """The lease statements of one store, rendered for its schema."""
    schema_id = sql.Identifier(schema)
    return _Queries(
        *(
            sql.SQL(template).format(schema=schema_id).as_string()
            for template in (
                _START,
                _ADD_RANGES,
                _HEARTBEAT,
                _BURY,
                _LIVE,
                _RENEW,
                _GIVE_BACK,
                _TAKE,
                _LEAVE,
                _SAVE,
                _FENCE,
                _LOCK_ALL,
                _RESET,
                _FINISH,
                _LAG,
                _PROJECTIONS,
                _RANGES,
            )
        )
    )


class PostgresSliceLeases(PostgresCheckpoints, SliceLeases):
    """A worker's leases on a sliced projection, on its own connection (as a runner's)."""

    def __init__(
        self, recorder: PostgresRecorder, name: str, worker: str, ranges: int, ttl: float
    ) -> None:
        super().__init__(recorder, name)
        self.worker, self.ranges, self.ttl = worker, ranges, ttl
        self.holding: list[HeldRange] = []
        self._leases = _queries(recorder.schema)
        self._names = {"name": name, "worker": worker, "ttl": ttl}
        self._shared = False
        # Not the projection's own key: every worker holds that one (shared) all along.
        self._setup_key = lock_key(recorder.schema, f"{name}\0setup")

    def open(self, wait: bool, poll_interval: float) -> None:
        """Connect and hold the projection's lock in shared mode (with the other workers)."""
        recorder = self._recorder
        recorder._check_writable()
        try:
            recorder._ensure_open()
            self._conn = conn = recorder._connect()
            conn.execute(self._sql.use_schema)
            while True:
                cur = conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (self._key,))
                row = cur.fetchone()
                if row is not None and row[0]:
                    self._shared = True
                    return
                if not wait:
                    raise ProjectionLocked(
                        self.name, "a runner that is not sliced holds it; stop it first"
                    )
                time.sleep(poll_interval)
        except psycopg.Error as e:
            self.close()
            raise StoreError(f"projection {self.name!r} cannot open its leases: {e}") from e
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.holding = []
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                if not conn.broken and self._shared:
                    conn.execute("SELECT pg_advisory_unlock_shared(%s)", (self._key,))
            except psycopg.Error:
                pass  # closing ends the session, and its lock with it
            finally:
                self._shared = False
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection[TupleRow]]:
        """A batch's transaction: it first locks the held ranges, and raises ``LeaseLost``
        at once if one of them changed hands."""
        with super().transaction() as conn:
            if self.holding:
                self._fence()
            yield conn

    def _fence(self) -> None:
        params = {
            **self._names,
            "firsts": [h.range.first for h in self.holding],
            "tokens": [h.token for h in self.holding],
        }
        cur = self._execute(self._leases.fence, params)
        row = cur.fetchone()
        if row is None or row[0] != len(self.holding):
            raise self._lost()

    def _lost(self) -> LeaseLost:
        return LeaseLost(
            f"sliced projection {self.name!r}: worker {self.worker!r} no longer holds every "
            "range it read for (another worker took one over, or a rebuild reset them); the "
            "batch was rolled back"
        )

    def _own_transaction(self) -> Any:
        """A transaction for the leases' own bookkeeping (no fence)."""
        return PostgresCheckpoints.transaction(self)

    def lock_all(self, connection: Any) -> None:
        self._execute(self._leases.lock_all, (self.name,))

    def lock_setup(self, connection: Any) -> None:
        self._execute("SELECT pg_advisory_xact_lock(%s)", (self._setup_key,))

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        """Record the projection and its ranges (the first worker does); refuse a worker
        asking for another number of ranges than the projection is split into."""
        params = {"name": self.name, "ranges": self.ranges, "types": list(types), "state": state}
        with self._own_transaction():
            cur = self._execute(self._leases.start, params)
            row = cur.fetchone()
            assert row is not None
            if row[0] != self.ranges:
                raise ConfigurationError(
                    f"sliced projection {self.name!r} is split into {row[0]} ranges in the "
                    f"store, but this worker was given ranges={self.ranges}; give every worker "
                    "the same number"
                )
            firsts, lasts = _bounds(split_slices(self.ranges))
            self._execute(self._leases.add_ranges, (self.name, firsts, lasts))
        return Checkpoint()

    def balance(self) -> None:
        q = self._leases
        with self._own_transaction():
            self._execute(q.heartbeat, self._names)
            self._execute(q.bury, self._names)
            cur = self._execute(q.live, self._names)
            live = int((cur.fetchone() or (1,))[0])
            cur = self._execute(q.renew, self._names)
            held = [_held(row) for row in cur.fetchall()]
            share = -(-self.ranges // max(live, 1))
            if len(held) > share:  # someone joined: give back the ranges above the share
                held.sort(key=lambda h: h.range.first)
                extra = [h.range.first for h in held[share:]]
                self._execute(q.give_back, {**self._names, "firsts": extra})
                held = held[:share]
            elif len(held) < share:
                cur = self._execute(q.take, {**self._names, "wanted": share - len(held)})
                held += [_held(row) for row in cur.fetchall()]
        self.holding = sorted(held, key=lambda h: h.range.first)

    def release(self) -> None:
        firsts = [h.range.first for h in self.holding]
        self.holding = []
        with self._own_transaction():
            self._execute(self._leases.give_back, {**self._names, "firsts": firsts})
            self._execute(self._leases.leave, self._names)

    def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        """Move every held range still behind ``after`` to it, guarded by its token."""
        behind = [h for h in self.holding if h.checkpoint < after]
        if not behind:
            return
        params = {
            **self._names,
            "txid": after.transaction_id,
            "position": after.position,
            "firsts": [h.range.first for h in behind],
            "tokens": [h.token for h in behind],
        }
        cur = self._execute(self._leases.save, params)
        try:
            row = cur.fetchone()
        except psycopg.Error as e:  # in pipeline mode: a statement before it failed
            raise StoreError(f"projection {self.name!r}: {e}") from e
        if row is None or row[0] != len(behind):
            raise self._lost()
        moved = {h.range.first for h in behind}
        self.holding = [
            h._replace(checkpoint=after) if h.range.first in moved else h for h in self.holding
        ]

    def reset(self, connection: Any) -> None:
        """Every range back at the start of the log, taken from its holder (tokens go up)."""
        self._execute(self._leases.reset, (self.name,))
        self._execute(self._sql.forget, (self.name,))
        self.holding = []

    def finish(self, state: str, error: str | None = None) -> None:
        self._execute(self._leases.finish, (state, error, self.name))

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        if not types or not self.holding:
            return 0
        firsts = [h.range.first for h in self.holding]
        cur = self._execute(self._leases.lag, (self.name, firsts, list(types)))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def status(self) -> SlicedStatus:
        found = _statuses(self._recorder, self.name)
        if not found:
            raise StoreError(f"sliced projection {self.name!r} has not started yet")
        return found[0]


def sliced_statuses(recorder: PostgresRecorder) -> list[SlicedStatus]:
    """Every sliced projection of the recorder's store, by name."""
    return _statuses(recorder, None)


def _statuses(recorder: PostgresRecorder, name: str | None) -> list[SlicedStatus]:
    q = _queries(recorder.schema)
    try:
        with recorder.connection() as conn:
            cur = conn.execute(q.projections, (name, name))
            projections = cur.fetchall()
            cur = conn.execute(q.ranges, (name, name))
            ranges = cur.fetchall()
    except psycopg.Error as e:
        raise StoreError(f"PostgreSQL store at {recorder.location}: sliced projections: {e}") from e
    by_name: dict[str, list[RangeStatus]] = {}
    for projection, first, last, owner, token, expires_at, txid, position, lag in ranges:
        status = RangeStatus(first, last, owner, token, expires_at, Checkpoint(txid, position), lag)
        by_name.setdefault(projection, []).append(status)
    return [
        SlicedStatus(
            found,
            shown_state(state, bool(workers)),
            error,
            list(workers),
            by_name.get(found, []),
            parked,
        )
        for found, state, error, _, workers, parked in projections
    ]


def _held(row: tuple[Any, ...]) -> HeldRange:
    first, last, token, txid, position = row
    return HeldRange(SliceRange(first, last), token, Checkpoint(txid, position))


def _bounds(ranges: list[SliceRange]) -> tuple[list[int], list[int]]:
    return [r.first for r in ranges], [r.last for r in ranges]
