"""A toy facta backend, written only against facta's public backend interface.

Everything lives in the lists and dicts of a :class:`ToyRecorder`, behind one lock; ``toy://``
opens a new, empty store. The sync recorder does the work and the async one calls it (nothing
here waits on I/O). tests/test_toy_backend.py installs it under the ``facta.backends`` entry
points and runs the contract suite on it; docs/backends.md walks through it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from facta.appending import (
    AppendResult,
    PreparedAppend,
    check_aggregate_type,
    check_expected,
    duplicate_event_id,
)
from facta.backends import Backend
from facta.errors import ConfigurationError, StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.projections import ProjectionLocked
from facta.recorder import AppendHook, Checkpoints, Recorder
from facta.recorder_async import AsyncCheckpoints, AsyncRecorder
from facta.records import (
    DeadLetter,
    EventPlace,
    HeldMessage,
    InboxStream,
    ProjectionStatus,
    StoredEvent,
    StreamVersion,
    shown_state,
)
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotRecord

__all__ = ["AsyncToyRecorder", "ToyRecorder", "backend"]


@dataclass
class Place:
    """One projection's row: where it is, what its runner said, and what it parked."""

    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    state: str = ""
    types: tuple[str, ...] = ()
    error: str | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)
    streams: dict[str, InboxStream] = field(default_factory=dict)  # an inbox's, by stream id
    held: list[HeldMessage] = field(default_factory=list)  # an inbox's, in the order held


class ToyRecorder(Recorder):
    """The whole store: the log, each stream, snapshots and projections, under one lock."""

    location = "toy://"

    def __init__(self, url: str = "toy://") -> None:
        if url != "toy://":
            raise ConfigurationError(f"a toy store's URL is toy:// and nothing more; got {url!r}")
        self.lock = threading.RLock()  # re-entrant: an inline handler may read the store
        self.log: list[StoredEvent] = []  # the event at position p is log[p - 1]
        self.by_stream: dict[str, list[StoredEvent]] = {}
        self.types: dict[str, str] = {}  # the aggregate type each typed stream was created as
        self.by_id: dict[uuid.UUID, StoredEvent] = {}
        self.snapshots: dict[str, dict[int, SnapshotRecord]] = {}
        self.places: dict[str, Place] = {}
        self.running: set[str] = set()  # the projections whose lock is taken

    def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        return self.write(appends, self.on_append)

    def write(
        self, appends: Sequence[PreparedAppend], hook: AppendHook | None
    ) -> list[AppendResult]:
        """Check, number, show the rows to ``hook``, and only then store them: all or nothing."""
        with self.lock:
            for append in appends:
                recorded = self.types.get(append.stream_id)
                check_aggregate_type(append.stream_id, recorded, append.aggregate_type)
                check_expected(append.stream_id, append.expected_version, self.version(append))
            ids = [event.event_id for append in appends for event in append.events]
            if len(set(ids)) < len(ids) or any(i in self.by_id for i in ids):
                raise duplicate_event_id(appends, {i for i in ids if i in self.by_id})
            rows: list[StoredEvent] = []
            results, now = [], datetime.now(UTC)
            for append in appends:
                version = self.version(append)
                for event in append.events:
                    version, position = version + 1, len(self.log) + len(rows) + 1
                    rows.append(StoredEvent(append.stream_id, version, position, 0, *event, now))
                last = rows[-1].position if append.events else 0
                results.append(AppendResult(append.stream_id, version, last))
            if hook is not None and rows:
                hook.call(None, rows)  # if an inline projection raises, nothing is stored
            for append in appends:
                if append.events and append.aggregate_type and not self.version(append):
                    self.types[append.stream_id] = append.aggregate_type
            for row in rows:
                self.log.append(row)
                self.by_stream.setdefault(row.stream_id, []).append(row)
                self.by_id[row.event_id] = row
            return results

    def version(self, append: PreparedAppend) -> int:
        return len(self.by_stream.get(append.stream_id, ()))

    def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        with self.lock:
            found = [self.by_id[i] for i in event_ids if i in self.by_id]
        return {e.event_id: EventPlace(e.stream_id, e.version, e.position) for e in found}

    def stream_version(self, stream_id: str) -> int:
        with self.lock:
            return len(self.by_stream.get(stream_id, ()))

    def stream_type(self, stream_id: str) -> str | None:
        with self.lock:
            return self.types.get(stream_id)

    def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        with self.lock:
            rows = self.by_stream.get(stream_id, [])
            return rows[max(from_version, 1) - 1 : to_version][:limit]

    def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        with self.lock:  # one writer at a time: the log has no gap a reader could skip
            rows = itertools.islice(self.log, after.position, None)
            wanted = rows if types is None else (row for row in rows if row.type in types)
            return list(itertools.islice(wanted, limit))

    def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        with self.lock:
            ids = sorted(self.by_stream)
            start = 0 if after is None else bisect.bisect_right(ids, after)
            return [StreamVersion(i, len(self.by_stream[i])) for i in ids[start : start + limit]]

    def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        with self.lock:
            kept = self.snapshots.setdefault(snapshot.stream_id, {})
            kept[snapshot.version] = snapshot
            for version in sorted(kept)[:-SNAPSHOT_CANDIDATES]:
                del kept[version]

    def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        with self.lock:
            kept = self.snapshots.get(stream_id, {})
            return [kept[v] for v in sorted(kept, reverse=True)[:limit]]

    def checkpoints(self, name: str) -> ToyCheckpoints:
        return ToyCheckpoints(self, name)

    def projection_statuses(self) -> list[ProjectionStatus]:
        with self.lock:
            return [
                ProjectionStatus(
                    name,
                    place.checkpoint,
                    self.lag(place.checkpoint, place.types),
                    shown_state(place.state, name in self.running),
                    place.error,
                    len(place.dead_letters),
                )
                for name, place in sorted(self.places.items())
            ]

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        with self.lock:
            return sum(row.type in types for row in self.log[after.position :])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield None  # no database: handlers get no connection

    def migrate(self) -> list[int]:
        return []


class ToyCheckpoints(Checkpoints):
    """One projection's place in its recorder; its lock is its name in ``running``."""

    transactional = False  # the read model is elsewhere: after a failure, at least once

    def __init__(self, recorder: ToyRecorder, name: str) -> None:
        super().__init__(name)
        self.recorder, self.place, self.locked = recorder, Place(), False

    def open(self, wait: bool, poll_interval: float) -> None:
        while not self.locked:
            with self.recorder.lock:
                if self.name not in self.recorder.running:
                    self.recorder.running.add(self.name)
                    self.place = self.recorder.places.setdefault(self.name, Place())
                    self.locked = True
                    return
            if not wait:
                raise ProjectionLocked(self.name, "in this process")
            time.sleep(poll_interval)

    def close(self) -> None:
        with self.recorder.lock:
            if self.locked:
                self.recorder.running.discard(self.name)
                self.locked = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield None

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        self.place.state, self.place.types, self.place.error = state, types, None
        return self.place.checkpoint

    def save(self, connection: None, before: Checkpoint, after: Checkpoint) -> None:
        if self.place.checkpoint != before:
            raise StoreError(f"projection {self.name!r} was moved by another runner")
        self.place.checkpoint = after

    def reset(self, connection: None) -> None:
        self.place.checkpoint, self.place.dead_letters = Checkpoint(), []

    def park(self, connection: None, event: RecordedEvent, error: str) -> None:
        self.place.dead_letters.append(
            DeadLetter(
                *(event.stream_id, event.version, event.position, event.transaction_id),
                *(event.event_id, event.type, error, datetime.now(UTC)),
            )
        )

    def dead_letters(self) -> list[DeadLetter]:
        return list(self.place.dead_letters)

    def finish(self, state: str, error: str | None = None) -> None:
        self.place.state, self.place.error = state, error

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        return self.recorder.lag(after, types)

    def inbox_streams(
        self, connection: None, stream_ids: Collection[str]
    ) -> dict[str, InboxStream]:
        with self.recorder.lock:
            return {i: self.place.streams[i] for i in stream_ids if i in self.place.streams}

    def save_inbox_streams(self, connection: None, streams: Sequence[InboxStream]) -> None:
        with self.recorder.lock:
            self.place.streams.update((s.stream_id, s) for s in streams)
            self.place.held = [m for m in self.place.held if not self.released(m)]

    def released(self, message: HeldMessage) -> bool:
        """Whether a parked message's stream has reached its version (it waits no more)."""
        reached = self.place.streams.get(message.stream_id or "")
        return (
            message.error is None
            and reached is not None
            and (message.version or 0) <= reached.version
        )

    def hold(self, connection: None, message: HeldMessage) -> None:
        with self.recorder.lock:
            self.place.held.append(message)

    def parked(self, connection: None, stream_id: str) -> list[HeldMessage]:
        with self.recorder.lock:
            found = [m for m in self.place.held if m.error is None and m.stream_id == stream_id]
        return sorted(found, key=lambda m: m.version or 0)

    def held(self) -> list[HeldMessage]:
        with self.recorder.lock:
            return list(self.recorder.places.get(self.name, self.place).held)


class AsyncToyRecorder(AsyncRecorder):
    """The async face of a ToyRecorder: the same work, called from coroutines."""

    location = "toy://"

    def __init__(self, url: str = "toy://") -> None:
        self.sync = ToyRecorder(url)

    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        return self.sync.write(appends, self.on_append)

    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        return self.sync.locate(event_ids)

    async def stream_version(self, stream_id: str) -> int:
        return self.sync.stream_version(stream_id)

    async def stream_type(self, stream_id: str) -> str | None:
        return self.sync.stream_type(stream_id)

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        return self.sync.read_stream(stream_id, from_version, to_version, limit)

    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        return self.sync.read_all(after, types, limit)

    async def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        return self.sync.streams(after, limit)

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        self.sync.write_snapshot(snapshot)

    async def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        return self.sync.read_snapshots(stream_id, limit)

    def checkpoints(self, name: str) -> AsyncToyCheckpoints:
        return AsyncToyCheckpoints(self.sync.checkpoints(name))

    async def projection_statuses(self) -> list[ProjectionStatus]:
        return self.sync.projection_statuses()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield None

    async def migrate(self) -> list[int]:
        return []


class AsyncToyCheckpoints(AsyncCheckpoints):
    """The async face of a projection's ToyCheckpoints."""

    transactional = False

    def __init__(self, sync: ToyCheckpoints) -> None:
        super().__init__(sync.name)
        self.sync = sync

    async def open(self, wait: bool, poll_interval: float) -> None:
        while True:
            try:
                return self.sync.open(False, poll_interval)
            except ProjectionLocked:
                if not wait:
                    raise
            await asyncio.sleep(poll_interval)

    async def close(self) -> None:
        self.sync.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield None

    async def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        return self.sync.start(state, types)

    async def save(self, connection: None, before: Checkpoint, after: Checkpoint) -> None:
        self.sync.save(connection, before, after)

    async def reset(self, connection: None) -> None:
        self.sync.reset(connection)

    async def park(self, connection: None, event: RecordedEvent, error: str) -> None:
        self.sync.park(connection, event, error)

    async def dead_letters(self) -> list[DeadLetter]:
        return self.sync.dead_letters()

    async def finish(self, state: str, error: str | None = None) -> None:
        self.sync.finish(state, error)

    async def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        return self.sync.lag(after, types)

    async def inbox_streams(
        self, connection: None, stream_ids: Collection[str]
    ) -> dict[str, InboxStream]:
        return self.sync.inbox_streams(connection, stream_ids)

    async def save_inbox_streams(self, connection: None, streams: Sequence[InboxStream]) -> None:
        self.sync.save_inbox_streams(connection, streams)

    async def hold(self, connection: None, message: HeldMessage) -> None:
        self.sync.hold(connection, message)

    async def parked(self, connection: None, stream_id: str) -> list[HeldMessage]:
        return self.sync.parked(connection, stream_id)

    async def held(self) -> list[HeldMessage]:
        return self.sync.held()


backend = Backend(ToyRecorder, AsyncToyRecorder)  # each is called with the URL
