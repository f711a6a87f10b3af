"""A recorder over several PostgreSQL recorders (partitions), each stream in one of them.

Every call about one stream goes to the partition holding it (see :mod:`.routing`), so a
stream's order, versions, idempotent appends and each partition's skip-free log are the
PostgreSQL recorder's own. An append naming streams of several partitions raises
``CrossPartitionAppend`` before anything is written. The global log is every partition's log,
read after a composite checkpoint (:mod:`.checkpoint`). The first partition is the home: it
keeps the catalog, the projections' read models and checkpoints, and the data keys.
"""

from __future__ import annotations

import asyncio  # sync: drop
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from facta.appending import AppendResult, EncodedEvent, PreparedAppend
from facta.backends.partitioned.catalog_async import load_catalog
from facta.backends.partitioned.checkpoint import (
    checkpoint_parts,
    merge_pages,
    partitioned_checkpoint,
)
from facta.backends.partitioned.checkpoints_async import AsyncPartitionedCheckpoints, statuses
from facta.backends.partitioned.routing import Placement, Routes
from facta.backends.postgres.keys_async import AsyncPostgresKeyTable
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.errors import ConfigurationError, CrossPartitionAppend
from facta.events import Checkpoint
from facta.recorder_async import AppendHook, AsyncRecorder
from facta.records import (
    EventPlace,
    ProjectionStatus,
    ReplayRow,
    StoredEvent,
    StreamInfo,
    StreamVersion,
)
from facta.snapshots import SnapshotRecord

__all__ = ["AsyncPartitionedRecorder"]

_WAIT_SLICE = 0.05  # seconds each partition is listened to in turn


class AsyncPartitionedRecorder(AsyncRecorder):
    """One logical store over ``partitions`` (name: PostgreSQL recorder; the first is home).

    ``placement`` names the partition of a stream id (``by_tenant()``, say); without one,
    streams are placed by slice through the routes in the home partition's catalog.
    """

    sync_transactions = False  # sync: sync_transactions = True

    def __init__(
        self, partitions: Mapping[str, AsyncPostgresRecorder], placement: Placement | None = None
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

    def replace(self, name: str, recorder: AsyncPostgresRecorder) -> None:
        """Route partition ``name`` to ``recorder`` from now on (after a move)."""
        recorder.on_append = self._hook
        self.partitions[name] = recorder
        self.location = _location(self.partitions)

    async def ready(self) -> None:
        """Open every partition (making its schema, as its options allow) and read (on first
        use, make) the catalog; check the partitions against it."""
        if not self._ready:
            for recorder in self.partitions.values():
                await recorder.streams(None, 1)  # opens it: checks, makes or migrates its schema
            locations = {name: r.location for name, r in self.partitions.items()}
            self.routes = await load_catalog(self.home, locations, self.placement is None)
            self._ready = True

    async def partition_of(self, stream_id: str) -> str:
        """The name of the partition holding ``stream_id``."""
        await self.ready()
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

    async def _recorder(self, stream_id: str) -> AsyncPostgresRecorder:
        return self.partitions[await self.partition_of(stream_id)]

    async def _one_partition(self, appends: Sequence[PreparedAppend]) -> AsyncPostgresRecorder:
        """The partition of every stream in ``appends``; ``CrossPartitionAppend`` if several."""
        found: dict[str, list[str]] = {}
        for append in appends:
            found.setdefault(await self.partition_of(append.stream_id), []).append(append.stream_id)
        if len(found) > 1:
            raise CrossPartitionAppend(found)
        return self.partitions[next(iter(found))] if found else self.home

    # -- writing ---------------------------------------------------------------------------

    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        recorder = await self._one_partition(appends)
        return await recorder.append(appends)

    async def append_in_transaction(
        self, connection: object, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        recorder = await self._one_partition(appends)
        return await recorder.append_in_transaction(connection, appends)

    async def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        recorder = await self._recorder(stream_id)
        return await recorder.delete_stream(stream_id, expected_version, marker, hard, reuse)

    async def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        recorder = await self._recorder(stream_id)
        return await recorder.reopen_stream(stream_id, marker)

    async def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        recorder = await self._recorder(stream_id)
        return await recorder.truncate_stream(stream_id, before, marker)

    async def set_retention(
        self, stream_id: str, max_age: float | None, max_count: int | None
    ) -> None:
        recorder = await self._recorder(stream_id)
        await recorder.set_retention(stream_id, max_age, max_count)

    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        found: dict[uuid.UUID, EventPlace] = {}
        for recorder in self.partitions.values():
            found.update(await recorder.locate(event_ids))
        return found

    # -- reading ---------------------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        recorder = await self._recorder(stream_id)
        return await recorder.stream_version(stream_id)

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        recorder = await self._recorder(stream_id)
        return await recorder.read_stream(stream_id, from_version, to_version, limit)

    async def replay_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int,
        aggregate_type: str | None = None,
    ) -> Sequence[ReplayRow]:
        recorder = await self._recorder(stream_id)
        return await recorder.replay_stream(
            stream_id, from_version, to_version, limit, aggregate_type
        )

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        recorder = await self._recorder(stream_id)
        return await recorder.stream_info(stream_id)

    async def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        found: list[StreamInfo] = []
        for recorder in self.partitions.values():
            found.extend(await recorder.retained_streams(after, limit))
        return sorted(found, key=lambda info: info.stream_id)[:limit]

    async def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        found: list[StreamVersion] = []
        for recorder in self.partitions.values():
            found.extend(await recorder.streams(after, limit))
        return sorted(found)[:limit]

    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        places = {name: Checkpoint() for name in self.partitions}
        places.update(checkpoint_parts(after))
        names = list(self.partitions)
        reads = [self.partitions[n].read_all(places[n], types, limit) for n in names]
        pages = await asyncio.gather(*reads)  # sync: pages = reads
        return merge_pages(dict(zip(names, pages, strict=True)), places, limit)

    async def last_checkpoint(self) -> Checkpoint:
        places = {}
        for name, recorder in self.partitions.items():
            places[name] = await recorder.last_checkpoint()
        return partitioned_checkpoint(places)

    async def wait_for_events(self, seconds: float) -> bool:
        """Listen to each partition in turn, a short while each, until one wakes."""
        deadline = time.monotonic() + seconds
        while True:
            for recorder in self.partitions.values():
                left = deadline - time.monotonic()
                if await recorder.wait_for_events(max(0.0, min(_WAIT_SLICE, left))):
                    return True
            if time.monotonic() >= deadline:
                return False

    # -- snapshots -------------------------------------------------------------------------

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        recorder = await self._recorder(snapshot.stream_id)
        await recorder.write_snapshot(snapshot)

    async def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        recorder = await self._recorder(stream_id)
        return await recorder.read_snapshots(stream_id, limit)

    # -- projections: read models, checkpoints and data keys live in the home partition ----

    def checkpoints(self, name: str) -> AsyncPartitionedCheckpoints:
        return AsyncPartitionedCheckpoints(self, name)

    async def projection_statuses(self) -> list[ProjectionStatus]:
        await self.ready()
        return await statuses(self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.home.transaction() as connection:
            yield connection

    def key_table(self) -> AsyncPostgresKeyTable:
        return self.home.key_table()

    # -- lifecycle -------------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        applied: set[int] = set()
        for recorder in self.partitions.values():
            applied.update(await recorder.migrate())
        await self.ready()
        return sorted(applied)

    async def check_integrity(self) -> list[str]:
        problems: list[str] = []
        for name, recorder in self.partitions.items():
            problems.extend(f"partition {name}: {p}" for p in await recorder.check_integrity())
        return problems

    async def close(self) -> None:
        for recorder in self.partitions.values():
            await recorder.close()


def _location(partitions: Mapping[str, AsyncPostgresRecorder]) -> str:
    return "partitioned(" + ", ".join(f"{n}={r.location}" for n, r in partitions.items()) + ")"
