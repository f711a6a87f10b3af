# WARNING: generated from src/facta/backends/partitioned/recorder_async.py by tools/gen_sync.py; do not edit.
"""A recorder over several PostgreSQL recorders (partitions), each stream in one of them.

Every call about one stream goes to the partition holding it (see :mod:`.routing`), so a
stream's order, versions, idempotent appends and each partition's skip-free log are the
PostgreSQL recorder's own. An append naming streams of several partitions raises
``CrossPartitionAppend`` before anything is written. The global log is every partition's log,
read after a composite checkpoint (:mod:`.checkpoint`). The first partition is the home: it
keeps the catalog, the projections' read models and checkpoints, and the data keys.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from facta.appending import AppendResult, EncodedEvent, PreparedAppend
from facta.backends.partitioned.catalog import load_catalog
from facta.backends.partitioned.checkpoint import (
    checkpoint_parts,
    merge_pages,
    partitioned_checkpoint,
)
from facta.backends.partitioned.checkpoints import PartitionedCheckpoints, statuses
from facta.backends.partitioned.routing import Placement, Routes
from facta.backends.postgres.keys import PostgresKeyTable
from facta.backends.postgres.recorder import PostgresRecorder
from facta.errors import ConfigurationError, CrossPartitionAppend
from facta.events import Checkpoint
from facta.recorder import AppendHook, Recorder
from facta.records import (
    EventPlace,
    ProjectionStatus,
    ReplayRow,
    StoredEvent,
    StreamInfo,
    StreamVersion,
)
from facta.snapshots import SnapshotRecord

__all__ = ["PartitionedRecorder"]

_WAIT_SLICE = 0.05  # seconds each partition is listened to in turn


class PartitionedRecorder(Recorder):
    """One logical store over ``partitions`` (name: PostgreSQL recorder; the first is home).

    ``placement`` names the partition of a stream id (``by_tenant()``, say); without one,
    streams are placed by slice through the routes in the home partition's catalog.
    """

    sync_transactions = True

    def __init__(
        self, partitions: Mapping[str, PostgresRecorder], placement: Placement | None = None
    ) -> None:
        if not partitions:
            raise ConfigurationError("a partitioned store needs at least one partition")
        self.partitions = dict(partitions)
        self.home = next(iter(self.partitions.values()))
        self.placement = placement
        self.routes: Routes | None = None
        self.location = _location(self.partitions)
        self._hook: AppendHook | None = None
        self._ready = False

    @property  # a hook every partition calls
    def on_append(self) -> AppendHook | None:
        return self._hook

    @on_append.setter
    def on_append(self, hook: AppendHook | None) -> None:
        self._hook = hook
        for recorder in self.partitions.values():
            recorder.on_append = hook

    def replace(self, name: str, recorder: PostgresRecorder) -> None:
        """Route partition ``name`` to ``recorder`` from now on (after a move)."""
        recorder.on_append = self._hook
        self.partitions[name] = recorder
        self.location = _location(self.partitions)

    def ready(self) -> None:
        """Open every partition (making its schema, as its options allow) and read (on first
        use, make) the catalog; check the partitions against it."""
        if not self._ready:
            for recorder in self.partitions.values():
                recorder.streams(None, 1)  # opens it: checks, makes or migrates its schema
            locations = {name: r.location for name, r in self.partitions.items()}
            self.routes = load_catalog(self.home, locations, self.placement is None)
            self._ready = True

    def partition_of(self, stream_id: str) -> str:
        """The name of the partition holding ``stream_id``."""
        self.ready()
        if self.placement is not None:
            name = self.placement(stream_id)
            if name not in self.partitions:
                raise ConfigurationError(
                    f"stream {stream_id!r} is placed in partition {name!r}, which this store "
                    f"does not have (it has {', '.join(self.partitions)})"
                )
            return name
        assert self.routes is not None
        return self.routes.partition_of(stream_id)

    def _recorder(self, stream_id: str) -> PostgresRecorder:
        return self.partitions[self.partition_of(stream_id)]

    def _one_partition(self, appends: Sequence[PreparedAppend]) -> PostgresRecorder:
        """The partition of every stream in ``appends``; ``CrossPartitionAppend`` if several."""
        found: dict[str, list[str]] = {}
        for append in appends:
            found.setdefault(self.partition_of(append.stream_id), []).append(append.stream_id)
        if len(found) > 1:
            raise CrossPartitionAppend(found)
        return self.partitions[next(iter(found))] if found else self.home

    # -- writing ---------------------------------------------------------------------------

    def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        recorder = self._one_partition(appends)
        return recorder.append(appends)

    def append_in_transaction(
        self, connection: object, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        recorder = self._one_partition(appends)
        return recorder.append_in_transaction(connection, appends)

    def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        recorder = self._recorder(stream_id)
        return recorder.delete_stream(stream_id, expected_version, marker, hard, reuse)

    def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        recorder = self._recorder(stream_id)
        return recorder.reopen_stream(stream_id, marker)

    def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        recorder = self._recorder(stream_id)
        return recorder.truncate_stream(stream_id, before, marker)

    def set_retention(self, stream_id: str, max_age: float | None, max_count: int | None) -> None:
        recorder = self._recorder(stream_id)
        recorder.set_retention(stream_id, max_age, max_count)

    def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        found: dict[uuid.UUID, EventPlace] = {}
        for recorder in self.partitions.values():
            found.update(recorder.locate(event_ids))
        return found

    # -- reading ---------------------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        recorder = self._recorder(stream_id)
        return recorder.stream_version(stream_id)

    def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        recorder = self._recorder(stream_id)
        return recorder.read_stream(stream_id, from_version, to_version, limit)

    def replay_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int,
        aggregate_type: str | None = None,
    ) -> Sequence[ReplayRow]:
        recorder = self._recorder(stream_id)
        return recorder.replay_stream(stream_id, from_version, to_version, limit, aggregate_type)

    def stream_info(self, stream_id: str) -> StreamInfo | None:
        recorder = self._recorder(stream_id)
        return recorder.stream_info(stream_id)

    def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        found: list[StreamInfo] = []
        for recorder in self.partitions.values():
            found.extend(recorder.retained_streams(after, limit))
        return sorted(found, key=lambda info: info.stream_id)[:limit]

    def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        found: list[StreamVersion] = []
        for recorder in self.partitions.values():
            found.extend(recorder.streams(after, limit))
        return sorted(found)[:limit]

    def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        places = {name: Checkpoint() for name in self.partitions}
        places.update(checkpoint_parts(after))
        names = list(self.partitions)
        reads = [self.partitions[n].read_all(places[n], types, limit) for n in names]
        pages = reads
        return merge_pages(dict(zip(names, pages, strict=True)), places, limit)

    def last_checkpoint(self) -> Checkpoint:
        places = {}
        for name, recorder in self.partitions.items():
            places[name] = recorder.last_checkpoint()
        return partitioned_checkpoint(places)

    def wait_for_events(self, seconds: float) -> bool:
        """Listen to each partition in turn, a short while each, until one wakes."""
        deadline = time.monotonic() + seconds
        while True:
            for recorder in self.partitions.values():
                left = deadline - time.monotonic()
                if recorder.wait_for_events(max(0.0, min(_WAIT_SLICE, left))):
                    return True
            if time.monotonic() >= deadline:
                return False

    # -- snapshots -------------------------------------------------------------------------

    def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        recorder = self._recorder(snapshot.stream_id)
        recorder.write_snapshot(snapshot)

    def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        recorder = self._recorder(stream_id)
        return recorder.read_snapshots(stream_id, limit)

    # -- projections: read models, checkpoints and data keys live in the home partition ----

    def checkpoints(self, name: str) -> PartitionedCheckpoints:
        return PartitionedCheckpoints(self, name)

    def projection_statuses(self) -> list[ProjectionStatus]:
        self.ready()
        return statuses(self)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.home.transaction() as connection:
            yield connection

    def key_table(self) -> PostgresKeyTable:
        return self.home.key_table()

    # -- lifecycle -------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        applied: set[int] = set()
        for recorder in self.partitions.values():
            applied.update(recorder.migrate())
        self.ready()
        return sorted(applied)

    def check_integrity(self) -> list[str]:
        problems: list[str] = []
        for name, recorder in self.partitions.items():
            problems.extend(f"partition {name}: {p}" for p in recorder.check_integrity())
        return problems

    def close(self) -> None:
        for recorder in self.partitions.values():
            recorder.close()


def _location(partitions: Mapping[str, PostgresRecorder]) -> str:
    return "partitioned(" + ", ".join(f"{n}={r.location}" for n, r in partitions.items()) + ")"
