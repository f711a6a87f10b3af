# WARNING: generated from src/facta/backends/memory/recorder_async.py by tools/gen_sync.py; do not edit.
"""The in-memory recorder: the global log in a list, one lock making every append atomic."""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from facta.appending import (
    AppendResult,
    PreparedAppend,
    check_aggregate_type,
    check_expected,
)
from facta.backends.memory.checkpoints import Book, MemoryCheckpoints
from facta.backends.memory.keys import MemoryKeyTable
from facta.backends.memory.signal import Signal
from facta.errors import DuplicateEventId, StoreError
from facta.events import Checkpoint
from facta.personal.data_keys import StoredKey
from facta.recorder import Recorder
from facta.records import EventPlace, ProjectionStatus, StoredEvent, StreamVersion
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotRecord

__all__ = ["MemoryRecorder"]


class MemoryRecorder(Recorder):
    """Keeps the global log in a list; one lock makes every append atomic."""

    location = "memory://"

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self._lock = threading.Lock()
        self._log: list[StoredEvent] = []  # the event at index i has position i + 1
        self._streams: dict[str, list[int]] = {}  # stream id -> its events' indexes in _log
        self._types: dict[str, str] = {}  # stream id -> the aggregate type it was created as
        self._ids: dict[uuid.UUID, int] = {}  # event id -> index in _log
        self._snapshots: dict[str, dict[int, SnapshotRecord]] = {}
        self._book = Book()
        self._appended = Signal()
        self._read_up_to = 0  # the log's length when a reader last found its end
        self._data_keys: dict[str, StoredKey] = {}  # subject -> its wrapped data key

    def stream_version(self, stream_id: str) -> int:
        with self._lock:
            return len(self._streams.get(stream_id, ()))

    def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        self._check_writable()
        with self._lock:
            new_ids: set[uuid.UUID] = set()
            for append in appends:
                recorded = self._types.get(append.stream_id)
                check_aggregate_type(append.stream_id, recorded, append.aggregate_type)
                actual = len(self._streams.get(append.stream_id, ()))
                check_expected(append.stream_id, append.expected_version, actual)
                for event in append.events:
                    if event.event_id in self._ids or event.event_id in new_ids:
                        raise DuplicateEventId(
                            f"event id {event.event_id} is already stored; stream "
                            f"{append.stream_id!r} was not written"
                        )
                    new_ids.add(event.event_id)
            now = datetime.now(UTC)
            start = len(self._log)
            results = []
            for append in appends:
                if not append.events:
                    version = len(self._streams.get(append.stream_id, ()))
                    results.append(AppendResult(append.stream_id, version, 0))
                    continue
                indexes = self._streams.setdefault(append.stream_id, [])
                if not indexes and append.aggregate_type is not None:
                    self._types[append.stream_id] = append.aggregate_type
                for event in append.events:
                    index = len(self._log)
                    self._log.append(
                        StoredEvent(
                            append.stream_id,
                            len(indexes) + 1,
                            index + 1,
                            0,
                            event.event_id,
                            event.type,
                            event.schema_version,
                            event.encoding,
                            event.data,
                            event.metadata,
                            now,
                        )
                    )
                    indexes.append(index)
                    self._ids[event.event_id] = index
                results.append(AppendResult(append.stream_id, len(indexes), len(self._log)))
            if self.on_append is not None and len(self._log) > start:
                try:
                    self.on_append.call(None, self._log[start:])
                except BaseException:
                    self._forget(start)
                    raise
        self._appended.notify()
        return results

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError("this memory:// store was opened read-only; nothing was written")

    def _forget(self, start: int) -> None:
        """Take back the events from index ``start`` on: an inline projection refused them."""
        for event in reversed(self._log[start:]):
            del self._ids[event.event_id]
            indexes = self._streams[event.stream_id]
            indexes.pop()
            if not indexes:
                del self._streams[event.stream_id]
                self._types.pop(event.stream_id, None)
        del self._log[start:]

    def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        with self._lock:
            found = {i: self._log[self._ids[i]] for i in event_ids if i in self._ids}
        return {i: EventPlace(e.stream_id, e.version, e.position) for i, e in found.items()}

    def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        with self._lock:
            indexes = self._streams.get(stream_id, [])
            stop = len(indexes) if to_version is None else min(to_version, len(indexes))
            start = max(from_version, 1) - 1
            return [self._log[i] for i in indexes[start : min(stop, start + limit)]]

    def stream_type(self, stream_id: str) -> str | None:
        with self._lock:
            return self._types.get(stream_id)

    def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        with self._lock:
            if types is None:
                page = self._log[after.position : after.position + limit]
            else:
                wanted = frozenset(types)
                page = []
                for index in range(after.position, len(self._log)):
                    event = self._log[index]
                    if event.type in wanted:
                        page.append(event)
                        if len(page) == limit:
                            break
            if len(page) < limit:
                self._read_up_to = len(self._log)
            return page

    def last_checkpoint(self) -> Checkpoint:
        with self._lock:
            return self._log[-1].checkpoint if self._log else Checkpoint()

    def wait_for_events(self, seconds: float) -> bool:
        """Wake at once on the next append; True at once if one came after the last read
        that reached the end of the log."""
        with self._lock:
            if len(self._log) > self._read_up_to:
                return True
        return self._appended.wait(seconds)

    def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        with self._lock:
            ids = sorted(self._streams)
            start = 0 if after is None else bisect.bisect_right(ids, after)
            return [StreamVersion(i, len(self._streams[i])) for i in ids[start : start + limit]]

    def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._check_writable()
        with self._lock:
            by_version = self._snapshots.setdefault(snapshot.stream_id, {})
            by_version[snapshot.version] = snapshot
            for version in sorted(by_version)[:-SNAPSHOT_CANDIDATES]:
                del by_version[version]

    def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        with self._lock:
            by_version = self._snapshots.get(stream_id, {})
            return [by_version[v] for v in sorted(by_version, reverse=True)[:limit]]

    def checkpoints(self, name: str) -> MemoryCheckpoints:
        return MemoryCheckpoints(self, self._book, name)

    def projection_statuses(self) -> list[ProjectionStatus]:
        return self._book.statuses(self)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._check_writable()
        yield None

    def migrate(self) -> list[int]:
        return []

    def key_table(self) -> MemoryKeyTable:
        return MemoryKeyTable(self._data_keys, self._lock, self._check_writable)
