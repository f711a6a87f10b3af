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
    EncodedEvent,
    PreparedAppend,
    check_aggregate_type,
    check_expected,
    duplicate_event_id,
)
from facta.backends import Backend
from facta.errors import ConfigurationError, InvalidEvent, StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.lifecycle import (
    check_deletable,
    check_open,
    check_reopenable,
    check_truncation,
    next_marker_version,
)
from facta.personal import StoredKey
from facta.personal.key_table import KeyTable
from facta.personal.key_table_async import AsyncKeyTable
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
    StreamInfo,
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
        self.log: dict[int, StoredEvent] = {}  # by position, in order; deletions leave gaps
        self.last_position = 0
        self.by_stream: dict[str, list[StoredEvent]] = {}  # each stream's stored events
        # What is recorded of a stream beside its events (type, deletion, truncation,
        # retention); its version field counts only once the stream is hard-deleted.
        self.info: dict[str, StreamInfo] = {}
        self.lowest: dict[str, int] = {}  # each stream's last marker version (-1, -2...)
        self.by_id: dict[uuid.UUID, StoredEvent] = {}
        self.snapshots: dict[str, dict[int, SnapshotRecord]] = {}
        self.places: dict[str, Place] = {}
        self.running: set[str] = set()  # the projections whose lock is taken
        self.data_keys: dict[str, StoredKey] = {}  # subject -> its wrapped data key

    def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        return self.write(appends, self.on_append)

    def write(
        self, appends: Sequence[PreparedAppend], hook: AppendHook | None
    ) -> list[AppendResult]:
        """Check, number, show the rows to ``hook``, and only then store them: all or nothing."""
        with self.lock:
            for append in appends:
                info = self.stream_info(append.stream_id)
                check_open(info)
                if info is not None:
                    check_aggregate_type(
                        append.stream_id, info.aggregate_type, append.aggregate_type
                    )
                check_expected(
                    append.stream_id, append.expected_version, self.stream_version(append.stream_id)
                )
            ids = [event.event_id for append in appends for event in append.events]
            if len(set(ids)) < len(ids) or any(i in self.by_id for i in ids):
                raise duplicate_event_id(appends, {i for i in ids if i in self.by_id})
            rows: list[StoredEvent] = []
            results, now = [], datetime.now(UTC)
            for append in appends:
                version = self.stream_version(append.stream_id)
                for event in append.events:
                    version, position = version + 1, self.last_position + len(rows) + 1
                    rows.append(StoredEvent(append.stream_id, version, position, 0, *event, now))
                last = rows[-1].position if append.events else 0
                results.append(AppendResult(append.stream_id, version, last))
            if hook is not None and rows:
                hook.call(None, rows)  # if an inline projection raises, nothing is stored
            for append in appends:
                if (
                    append.events
                    and append.aggregate_type
                    and not self.stream_version(append.stream_id)
                ):
                    self.info[append.stream_id] = StreamInfo(
                        append.stream_id, 0, aggregate_type=append.aggregate_type
                    )
            for row in rows:
                self.store(row)
                self.by_stream.setdefault(row.stream_id, []).append(row)
            return results

    def store(self, row: StoredEvent) -> None:
        self.log[row.position] = row
        self.last_position = row.position
        self.by_id[row.event_id] = row

    def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        with self.lock:
            found = [self.by_id[i] for i in event_ids if i in self.by_id]
        return {e.event_id: EventPlace(e.stream_id, e.version, e.position) for e in found}

    def stream_version(self, stream_id: str) -> int:
        with self.lock:
            info, rows = self.info.get(stream_id), self.by_stream.get(stream_id)
            if info is not None and info.hard_deleted:
                return info.version
            first = 1 if info is None else info.first_version
            return first - 1 + len(rows or ())

    def stream_info(self, stream_id: str) -> StreamInfo | None:
        with self.lock:
            version = self.stream_version(stream_id)
            info = self.info.get(stream_id)
            if info is None:
                return StreamInfo(stream_id, version) if version else None
            return info._replace(version=version)

    # -- lifecycle: one marker each, written as an append is (the hook sees it first) --------

    def mark(self, stream_id: str, marker: EncodedEvent) -> StoredEvent:
        version = next_marker_version(self.lowest.get(stream_id))
        row = StoredEvent(stream_id, version, self.last_position + 1, 0, *marker, datetime.now(UTC))
        if self.on_append is not None:
            self.on_append.call(None, [row])
        self.store(row)
        self.lowest[stream_id] = version
        return row

    def remove(self, rows: Sequence[StoredEvent]) -> None:
        for row in rows:
            del self.log[row.position]
            del self.by_id[row.event_id]

    def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        with self.lock:
            info = self.stream_info(stream_id)
            version = check_deletable(stream_id, info, expected_version)
            assert info is not None
            row = self.mark(stream_id, marker)
            deleted = info._replace(deleted_at=row.recorded_at, hard_deleted=hard)
            if hard:
                self.remove(self.by_stream.pop(stream_id, []))
                self.snapshots.pop(stream_id, None)
            if hard and reuse:
                self.info.pop(stream_id, None)
            else:
                self.info[stream_id] = deleted
            return AppendResult(stream_id, version, row.position)

    def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        with self.lock:
            info = check_reopenable(stream_id, self.stream_info(stream_id))
            row = self.mark(stream_id, marker)
            self.info[stream_id] = info._replace(deleted_at=None)
            return AppendResult(stream_id, info.version, row.position)

    def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        with self.lock:
            info = self.stream_info(stream_id)
            kept = self.snapshots.get(stream_id, {})
            if not check_truncation(info, before, max(kept, default=None)):
                return 0
            assert info is not None
            rows = self.by_stream[stream_id]
            removed = before - info.first_version
            self.mark(stream_id, marker)
            self.remove(rows[:removed])
            del rows[:removed]
            self.info[stream_id] = info._replace(first_version=before)
            for version in [v for v in kept if v < before - 1]:
                del kept[version]
            return removed

    def set_retention(self, stream_id: str, max_age: float | None, max_count: int | None) -> None:
        with self.lock:
            info = self.stream_info(stream_id)
            if info is None:
                raise InvalidEvent(f"stream {stream_id!r} holds no events; no retention was set")
            self.info[stream_id] = info._replace(max_age=max_age, max_count=max_count)

    def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        with self.lock:
            found = [
                self.stream_info(i)
                for i, info in sorted(self.info.items())
                if (info.max_age is not None or info.max_count is not None)
                and (after is None or i > after)
            ]
            return [info for info in found if info is not None][:limit]

    # -- reading -----------------------------------------------------------------------------

    def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        with self.lock:
            rows = self.by_stream.get(stream_id, [])
            last = to_version if to_version is not None else float("inf")
            return [row for row in rows if from_version <= row.version <= last][:limit]

    def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        with self.lock:  # one writer at a time: the log has no gap a reader could skip
            rows = (row for position, row in self.log.items() if position > after.position)
            wanted = rows if types is None else (row for row in rows if row.type in types)
            return list(itertools.islice(wanted, limit))

    def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        with self.lock:
            ids = sorted(i for i, rows in self.by_stream.items() if rows)
            start = 0 if after is None else bisect.bisect_right(ids, after)
            chosen = ids[start : start + limit]
            return [StreamVersion(i, self.stream_version(i)) for i in chosen]

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
            return sum(row.type in types for p, row in self.log.items() if p > after.position)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield None  # no database: handlers get no connection

    def migrate(self) -> list[int]:
        return []

    def key_table(self) -> ToyKeyTable:
        return ToyKeyTable(self)


class ToyKeyTable(KeyTable):
    """Subjects' wrapped data keys (personal data), in a dict of the recorder's."""

    def __init__(self, recorder: ToyRecorder) -> None:
        self.recorder = recorder

    def read(self, subjects: Sequence[str]) -> list[StoredKey]:
        with self.recorder.lock:
            keys = self.recorder.data_keys
            return [keys[s] for s in dict.fromkeys(subjects) if s in keys]

    def add(self, keys: Sequence[StoredKey]) -> list[StoredKey]:
        with self.recorder.lock:  # a key stored already wins over the one given
            return [self.recorder.data_keys.setdefault(key.subject, key) for key in keys]

    def delete(self, subjects: Sequence[str]) -> int:
        with self.recorder.lock:
            return sum(self.recorder.data_keys.pop(s, None) is not None for s in set(subjects))

    def page(self, after: str | None, limit: int) -> list[StoredKey]:
        with self.recorder.lock:
            subjects = sorted(s for s in self.recorder.data_keys if after is None or s > after)
            return [self.recorder.data_keys[s] for s in subjects[:limit]]

    def replace(self, keys: Sequence[StoredKey]) -> int:
        with self.recorder.lock:
            stored = self.recorder.data_keys
            fits = [key for key in keys if key.subject in stored]
            fits = [key for key in fits if stored[key.subject].key_id == key.key_id]
            stored.update((key.subject, key) for key in fits)
            return len(fits)


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

    @property  # type: ignore[override]
    def on_append(self) -> AppendHook | None:
        """The sync recorder's hook: the one that does the work calls it."""
        return self.sync.on_append

    @on_append.setter
    def on_append(self, hook: AppendHook | None) -> None:
        self.sync.on_append = hook

    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        return self.sync.write(appends, self.sync.on_append)

    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        return self.sync.locate(event_ids)

    async def stream_version(self, stream_id: str) -> int:
        return self.sync.stream_version(stream_id)

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        return self.sync.stream_info(stream_id)

    async def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        return self.sync.delete_stream(stream_id, expected_version, marker, hard, reuse)

    async def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        return self.sync.reopen_stream(stream_id, marker)

    async def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        return self.sync.truncate_stream(stream_id, before, marker)

    async def set_retention(
        self, stream_id: str, max_age: float | None, max_count: int | None
    ) -> None:
        self.sync.set_retention(stream_id, max_age, max_count)

    async def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        return self.sync.retained_streams(after, limit)

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

    def key_table(self) -> AsyncToyKeyTable:
        return AsyncToyKeyTable(self.sync.key_table())


class AsyncToyKeyTable(AsyncKeyTable):
    """The async face of a ToyKeyTable."""

    def __init__(self, sync: ToyKeyTable) -> None:
        self.sync = sync

    async def read(self, subjects: Sequence[str]) -> list[StoredKey]:
        return self.sync.read(subjects)

    async def add(self, keys: Sequence[StoredKey]) -> list[StoredKey]:
        return self.sync.add(keys)

    async def delete(self, subjects: Sequence[str]) -> int:
        return self.sync.delete(subjects)

    async def page(self, after: str | None, limit: int) -> list[StoredKey]:
        return self.sync.page(after, limit)

    async def replace(self, keys: Sequence[StoredKey]) -> int:
        return self.sync.replace(keys)


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
