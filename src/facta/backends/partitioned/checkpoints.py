# WARNING: generated from src/facta/backends/partitioned/checkpoints_async.py by tools/gen_sync.py; do not edit.
"""Projection checkpoints of a partitioned store: a place per partition, in the home partition.

A runner's read model, lock, dead letters and inbox state are the home partition's, as on one
database; its checkpoint is composite (:mod:`.checkpoint`): one row per partition in
``facta_partition_checkpoints``, moved in the read model's transaction, so a batch of events
from several partitions is applied exactly once. ``facta_projections`` keeps the last
event's own pair, which ``facta projections status`` shows (and the checkpoint compares
equal to, as the event's ``checkpoint`` does).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from facta.backends.partitioned.checkpoint import checkpoint_parts, partitioned_checkpoint
from facta.errors import StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.recorder import Checkpoints
from facta.records import DeadLetter, HeldMessage, InboxStream, ProjectionStatus

if TYPE_CHECKING:
    from facta.backends.partitioned.recorder import PartitionedRecorder

__all__ = ["PartitionedCheckpoints", "statuses"]

_START = """
INSERT INTO {schema}.facta_partition_checkpoints (projection, partition)
SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING"""
_PLACES = """
SELECT partition, transaction_id, position FROM {schema}.facta_partition_checkpoints
WHERE projection = %s"""
_SAVE = """
UPDATE {schema}.facta_partition_checkpoints SET transaction_id = %s, position = %s
WHERE projection = %s AND partition = %s AND transaction_id = %s AND position = %s
RETURNING 1"""
_RESET = """
UPDATE {schema}.facta_partition_checkpoints SET transaction_id = 0, position = 0
WHERE projection = %s"""
_LAG = """
SELECT count(*) FROM {schema}.facta_events
WHERE (transaction_id, position) > (%s, %s) AND type = ANY(%s)"""
_TYPES = "SELECT name, types FROM {schema}.facta_projections"


def _text(template: str, schema: str) -> sql.Composed:
    return sql.SQL(template).format(schema=sql.Identifier(schema))


class PartitionedCheckpoints(Checkpoints):
    """One projection's composite checkpoint, on top of the home partition's checkpoints."""

    def __init__(self, recorder: PartitionedRecorder, name: str) -> None:
        super().__init__(name)
        self._recorder = recorder
        self._home = recorder.home.checkpoints(name)
        self._schema = recorder.home.schema

    def open(self, wait: bool, poll_interval: float) -> None:
        self._recorder.ready()
        self._home.open(wait, poll_interval)

    def close(self) -> None:
        self._home.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._home.transaction() as connection:
            yield connection

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        last = self._home.start(state, types)
        with self._home.transaction() as conn:
            names = list(self._recorder.partitions)
            conn.execute(_text(_START, self._schema), (self.name, names))
            cur = conn.execute(_text(_PLACES, self._schema), (self.name,))
            rows = cur.fetchall()
        return partitioned_checkpoint({name: Checkpoint(t, p) for name, t, p in rows}, last)

    def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        old, new = self._places(before), self._places(after)
        self._home.save(connection, _pair(before), _pair(after))
        query = _text(_SAVE, self._schema)
        for name, place in new.items():
            if place == old[name]:
                continue
            try:
                cur = connection.execute(query, (*place, self.name, name, *old[name]))
                saved = cur.fetchone()
            except psycopg.Error as e:
                raise StoreError(f"projection {self.name!r}: {e}") from e
            if saved is None:
                raise StoreError(
                    f"projection {self.name!r}: its checkpoint in partition {name!r} is no longer "
                    f"{old[name]}; another runner moved it; nothing of this batch was kept"
                )

    def _places(self, checkpoint: Checkpoint) -> dict[str, Checkpoint]:
        places = {name: Checkpoint() for name in self._recorder.partitions}
        places.update(checkpoint_parts(checkpoint))
        return {name: Checkpoint(int(t), p) for name, (t, p) in places.items()}

    def reset(self, connection: Any) -> None:
        self._home.reset(connection)
        connection.execute(_text(_RESET, self._schema), (self.name,))

    def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        self._home.park(connection, event, error)

    def dead_letters(self) -> list[DeadLetter]:
        return self._home.dead_letters()

    def finish(self, state: str, error: str | None = None) -> None:
        self._home.finish(state, error)

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        if not types:
            return 0
        total = 0
        for name, place in self._places(after).items():
            total += _lag(self._recorder, name, place, types)
        return total

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        if not stopping.is_set():
            self._recorder.wait_for_events(seconds)

    # -- inboxes: the home partition's ----------------------------------------------------

    def inbox_streams(self, connection: Any, stream_ids: Collection[str]) -> dict[str, InboxStream]:
        return self._home.inbox_streams(connection, stream_ids)

    def save_inbox_streams(self, connection: Any, streams: Sequence[InboxStream]) -> None:
        self._home.save_inbox_streams(connection, streams)

    def hold(self, connection: Any, message: HeldMessage) -> None:
        self._home.hold(connection, message)

    def parked(self, connection: Any, stream_id: str) -> list[HeldMessage]:
        return self._home.parked(connection, stream_id)

    def held(self) -> list[HeldMessage]:
        return self._home.held()


def _pair(checkpoint: Checkpoint) -> Checkpoint:
    """The plain pair a checkpoint shows (the last event's)."""
    return Checkpoint(int(checkpoint.transaction_id), checkpoint.position)


def _lag(recorder: PartitionedRecorder, name: str, place: Checkpoint, types: Sequence[str]) -> int:
    """How many events of ``types`` partition ``name`` holds after ``place``."""
    partition = recorder.partitions[name]
    try:
        with partition.connection() as conn:
            query = _text(_LAG, partition.schema)
            cur = conn.execute(query, (*place, list(types)))
            row = cur.fetchone()
    except psycopg.Error as e:
        raise StoreError(f"partition {name!r} ({partition.location}): lag: {e}") from e
    return int(row[0]) if row else 0


def statuses(recorder: PartitionedRecorder) -> list[ProjectionStatus]:
    """The home partition's projection statuses, with composite places and the lag summed
    over every partition."""
    found = recorder.home.projection_statuses()
    home = recorder.home
    try:
        with home.connection() as conn:
            cur = conn.execute(_text(_TYPES, home.schema))
            types = {name: list(kinds or ()) for name, kinds in cur.fetchall()}
            places: dict[str, dict[str, Checkpoint]] = {}
            query = "SELECT projection, partition, transaction_id, position FROM {schema}."
            cur = conn.execute(_text(query + "facta_partition_checkpoints", home.schema))
            for projection, partition, t, p in cur.fetchall():
                places.setdefault(projection, {})[partition] = Checkpoint(t, p)
    except psycopg.Error as e:
        raise StoreError(f"partitioned store at {recorder.location}: projections: {e}") from e
    result = []
    for status in found:
        parts = places.get(status.name)
        if parts is None:  # not a runner of this partitioned store's
            result.append(status)
            continue
        lag = 0
        for name in recorder.partitions:
            place = parts.get(name, Checkpoint())
            lag += _lag(recorder, name, place, types.get(status.name, []))
        checkpoint = partitioned_checkpoint(parts, status.checkpoint)
        result.append(status._replace(checkpoint=checkpoint, lag=lag))
    return result
