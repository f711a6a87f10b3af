"""The in-memory recorder: the global log in a list, one lock making every append atomic."""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import cast

from facta.appending import (
    AppendResult,
    EncodedEvent,
    PreparedAppend,
    check_aggregate_type,
    check_expected,
    duplicate_event_id,
)
from facta.backends.memory.checkpoints_async import AsyncMemoryCheckpoints, Book
from facta.backends.memory.keys_async import AsyncMemoryKeyTable
from facta.backends.memory.signal import Signal
from facta.errors import InvalidEvent, StoreError
from facta.events import Checkpoint
from facta.lifecycle import (
    check_deletable,
    check_load,
    check_open,
    check_reopenable,
    check_truncation,
    next_marker_version,
)
from facta.personal.data_keys import StoredKey
from facta.recorder_async import AsyncRecorder
from facta.records import (
    EventPlace,
    ProjectionStatus,
    ReplayRow,
    StoredEvent,
    StreamInfo,
    StreamVersion,
)
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotRecord

__all__ = ["AsyncMemoryRecorder"]


class AsyncMemoryRecorder(AsyncRecorder):
    """Keeps the global log in a list; one lock makes every append atomic."""

    location = "memory://"

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self._lock = threading.Lock()
        # The event at index i has position i + 1; None where a deletion removed it.
        self._log: list[StoredEvent | None] = []
        self._holes = 0  # how many Nones _log holds
        # stream id -> the indexes in _log of its events, versions first_version, first + 1...
        self._streams: dict[str, list[int]] = {}
        # stream id -> what is recorded of it (type, deletion, truncation, retention); only
        # streams with something to record have one. Its version counts only when hard-deleted.
        self._info: dict[str, StreamInfo] = {}
        self._lowest: dict[str, int] = {}  # stream id -> its last marker's version (-1, -2...)
        self._ids: dict[uuid.UUID, int] = {}  # event id -> index in _log
        self._snapshots: dict[str, dict[int, SnapshotRecord]] = {}
        self._book = Book()
        self._appended = Signal()
        self._read_up_to = 0  # the log's length when a reader last found its end
        self._data_keys: dict[str, StoredKey] = {}  # subject -> its wrapped data key

    def _version(self, stream_id: str) -> int:
        indexes = self._streams.get(stream_id)
        info = self._info.get(stream_id)
        if info is None:
            return len(indexes) if indexes else 0
        if info.hard_deleted:
            return info.version
        return info.first_version - 1 + (len(indexes) if indexes else 0)

    async def stream_version(self, stream_id: str) -> int:
        with self._lock:
            return self._version(stream_id)

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        with self._lock:
            return self._stream_info(stream_id)

    def _stream_info(self, stream_id: str) -> StreamInfo | None:
        info = self._info.get(stream_id)
        version = self._version(stream_id)
        if info is None:
            return StreamInfo(stream_id, version) if version else None
        return info._replace(version=version)

    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        if self.read_only:
            self._check_writable()
        with self._lock:
            new_ids: list[uuid.UUID] = []  # a list: each id is hashed once, below
            versions = []  # each stream's version before the append
            ids, streams, infos = self._ids, self._streams, self._info
            for append in appends:
                stream_id = append.stream_id
                info = infos.get(stream_id)
                if info is None:  # a stream with nothing recorded but its events (as _version)
                    indexes = streams.get(stream_id)
                    actual = len(indexes) if indexes else 0
                else:
                    check_open(info)
                    check_aggregate_type(stream_id, info.aggregate_type, append.aggregate_type)
                    actual = self._version(stream_id)
                check_expected(stream_id, append.expected_version, actual)
                versions.append(actual)
                for event in append.events:
                    event_id = event.event_id
                    if event_id in ids:
                        raise duplicate_event_id(appends, ids.keys())
                    new_ids.append(event_id)
            if len(new_ids) > 1 and len(set(new_ids)) < len(new_ids):  # one given twice
                raise duplicate_event_id(appends, ())
            now = datetime.now(UTC)
            log = self._log
            start = len(log)
            results = []
            for append, version in zip(appends, versions, strict=True):
                stream_id = append.stream_id
                if not append.events:
                    results.append(AppendResult(stream_id, version, 0))
                    continue
                indexes = streams.setdefault(stream_id, [])
                if version == 0 and append.aggregate_type is not None:
                    # tuple.__new__: StreamInfo's generated __new__ costs a call per new stream
                    infos[stream_id] = tuple.__new__(
                        StreamInfo, (stream_id, 0, append.aggregate_type, *_NEW_STREAM)
                    )
                for event in append.events:
                    index = len(log)
                    version += 1
                    # tuple.__new__ skips StoredEvent's generated __new__ (as _row)
                    log.append(
                        tuple.__new__(StoredEvent, (stream_id, version, index + 1, 0, *event, now))
                    )
                    indexes.append(index)
                    ids[event.event_id] = index
                results.append(AppendResult(stream_id, version, len(log)))
            if self.on_append is not None and len(log) > start:
                try:
                    self.on_append.call(None, cast("list[StoredEvent]", log[start:]))
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
            assert event is not None  # appended just now
            del self._ids[event.event_id]
            indexes = self._streams[event.stream_id]
            indexes.pop()
            if not indexes:
                del self._streams[event.stream_id]
                if event.version == 1:  # the append created the stream: forget its type
                    self._info.pop(event.stream_id, None)
        del self._log[start:]

    # -- lifecycle ---------------------------------------------------------------------------

    def _mark(self, stream_id: str, marker: EncodedEvent) -> StoredEvent:
        """Write a stream's next marker, shown first to the inline projections (which may
        refuse it: then nothing has changed)."""
        row = _row(
            stream_id,
            next_marker_version(self._lowest.get(stream_id)),
            len(self._log),
            marker,
            datetime.now(UTC),
        )
        if self.on_append is not None:
            self.on_append.call(None, [row])
        self._log.append(row)
        self._ids[marker.event_id] = len(self._log) - 1
        self._lowest[stream_id] = row.version
        return row

    def _remove(self, indexes: Sequence[int]) -> None:
        """Take events out of the log, leaving holes where they were."""
        for index in indexes:
            event = self._log[index]
            assert event is not None
            del self._ids[event.event_id]
            self._log[index] = None
        self._holes += len(indexes)

    async def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        self._check_writable()
        with self._lock:
            info = self._stream_info(stream_id)
            version = check_deletable(stream_id, info, expected_version)
            assert info is not None
            row = self._mark(stream_id, marker)
            if not hard:
                self._info[stream_id] = info._replace(deleted_at=row.recorded_at)
            else:
                self._remove(self._streams.pop(stream_id, []))
                self._snapshots.pop(stream_id, None)
                if reuse:
                    self._info.pop(stream_id, None)
                else:
                    self._info[stream_id] = info._replace(
                        deleted_at=row.recorded_at, hard_deleted=True
                    )
        self._appended.notify()
        return AppendResult(stream_id, version, row.position)

    async def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        self._check_writable()
        with self._lock:
            info = check_reopenable(stream_id, self._stream_info(stream_id))
            row = self._mark(stream_id, marker)
            self._info[stream_id] = info._replace(deleted_at=None)
        self._appended.notify()
        return AppendResult(stream_id, info.version, row.position)

    async def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        self._check_writable()
        with self._lock:
            info = self._stream_info(stream_id)
            snapshots = self._snapshots.get(stream_id, {})
            if not check_truncation(info, before, max(snapshots, default=None)):
                return 0
            assert info is not None
            indexes = self._streams.get(stream_id, [])
            removed = before - info.first_version
            self._mark(stream_id, marker)
            self._remove(indexes[:removed])
            del indexes[:removed]
            self._info[stream_id] = info._replace(first_version=before)
            for version in [v for v in snapshots if v < before - 1]:
                del snapshots[version]
        self._appended.notify()
        return removed

    async def set_retention(
        self, stream_id: str, max_age: float | None, max_count: int | None
    ) -> None:
        self._check_writable()
        with self._lock:
            info = self._stream_info(stream_id)
            if info is None:
                raise InvalidEvent(f"stream {stream_id!r} holds no events; no retention was set")
            self._info[stream_id] = info._replace(max_age=max_age, max_count=max_count)

    async def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        with self._lock:
            ids = sorted(
                i
                for i, info in self._info.items()
                if (info.max_age is not None or info.max_count is not None)
                and (after is None or i > after)
            )
            return [info for i in ids[:limit] if (info := self._stream_info(i)) is not None]

    # -- reading -----------------------------------------------------------------------------

    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        with self._lock:
            found = [self._log[self._ids[i]] for i in event_ids if i in self._ids]
        return {e.event_id: EventPlace(e.stream_id, e.version, e.position) for e in found if e}

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        with self._lock:
            return self._events(stream_id, from_version, to_version, limit)

    async def replay_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int,
        aggregate_type: str | None = None,
    ) -> list[ReplayRow]:
        with self._lock:  # the stream's record as stored is all check_load looks at
            if aggregate_type is not None:
                check_load(stream_id, self._info.get(stream_id), aggregate_type, from_version)
            rows = self._events(stream_id, from_version, to_version, limit)
        return [(e.version, e.type, e.schema_version, e.encoding, e.data) for e in rows]

    def _events(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        indexes = self._streams.get(stream_id, [])
        info = self._info.get(stream_id)
        first = 1 if info is None else info.first_version
        stop = len(indexes) if to_version is None else min(to_version - first + 1, len(indexes))
        start = max(from_version, first) - first
        log = cast("list[StoredEvent]", self._log)  # a stream's indexes point at its events
        return [log[i] for i in indexes[start : min(stop, start + limit)]]

    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        with self._lock:
            if types is None and not self._holes:
                page = self._log[after.position : after.position + limit]
            else:
                wanted = None if types is None else frozenset(types)
                page = []
                for index in range(after.position, len(self._log)):
                    event = self._log[index]
                    if event is not None and (wanted is None or event.type in wanted):
                        page.append(event)
                        if len(page) == limit:
                            break
            if len(page) < limit:
                self._read_up_to = len(self._log)
            return cast("list[StoredEvent]", page)  # holes were skipped

    async def last_checkpoint(self) -> Checkpoint:
        with self._lock:
            last = next((e for e in reversed(self._log) if e is not None), None)
            return Checkpoint() if last is None else last.checkpoint

    async def wait_for_events(self, seconds: float) -> bool:
        """Wake at once on the next append; True at once if one came after the last read
        that reached the end of the log."""
        with self._lock:
            if len(self._log) > self._read_up_to:
                return True
        return await self._appended.wait_async(seconds)  # sync: return self._appended.wait(seconds)

    async def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        with self._lock:
            ids = sorted(i for i in self._streams if self._streams[i])
            start = 0 if after is None else bisect.bisect_right(ids, after)
            return [StreamVersion(i, self._version(i)) for i in ids[start : start + limit]]

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._check_writable()
        with self._lock:
            by_version = self._snapshots.setdefault(snapshot.stream_id, {})
            by_version[snapshot.version] = snapshot
            for version in sorted(by_version)[:-SNAPSHOT_CANDIDATES]:
                del by_version[version]

    async def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        with self._lock:
            by_version = self._snapshots.get(stream_id, {})
            return [by_version[v] for v in sorted(by_version, reverse=True)[:limit]]

    def checkpoints(self, name: str) -> AsyncMemoryCheckpoints:
        return AsyncMemoryCheckpoints(self, self._book, name)

    async def projection_statuses(self) -> list[ProjectionStatus]:
        return await self._book.statuses(self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self._check_writable()
        yield None

    async def migrate(self) -> list[int]:
        return []

    def key_table(self) -> AsyncMemoryKeyTable:
        return AsyncMemoryKeyTable(self._data_keys, self._lock, self._check_writable)


# StreamInfo's fields after (stream_id, version, aggregate_type), as a new stream has them.
_NEW_STREAM = tuple(StreamInfo._field_defaults[f] for f in StreamInfo._fields[3:])


def _row(
    stream_id: str, version: int, index: int, event: EncodedEvent, now: datetime
) -> StoredEvent:
    """The stored row of an event written at ``index`` of the log (position ``index + 1``)."""
    # tuple.__new__ skips StoredEvent's generated __new__: a row is made per event appended
    return tuple.__new__(StoredEvent, (stream_id, version, index + 1, 0, *event, now))
