"""The in-memory event store: for tests and examples. Thread- and task-safe; nothing persists."""

from __future__ import annotations

import bisect
import threading
import uuid
from datetime import UTC, datetime

from facta.appending import AppendResult, PreparedAppend, check_expected
from facta.codec import Codec
from facta.errors import DuplicateEventId
from facta.events import Checkpoint
from facta.ids import validate_stream_id
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotRecord
from facta.store_async import AsyncEventStore, Row

__all__ = ["AsyncMemoryEventStore"]


class AsyncMemoryEventStore(AsyncEventStore):
    """Keeps the global log in a list; one lock makes every append atomic."""

    def __init__(self, codec: Codec | None = None) -> None:
        super().__init__(codec)
        self._lock = threading.Lock()
        self._log: list[Row] = []  # the row at index i has position i + 1
        self._streams: dict[str, list[int]] = {}  # stream id -> its events' indexes in _log
        self._ids: dict[uuid.UUID, int] = {}  # event id -> index in _log
        self._snapshots: dict[str, dict[int, SnapshotRecord]] = {}

    async def stream_version(self, stream_id: str) -> int:
        validate_stream_id(stream_id)
        with self._lock:
            return len(self._streams.get(stream_id, ()))

    async def _append(self, appends: list[PreparedAppend]) -> list[AppendResult]:
        with self._lock:
            new_ids: set[uuid.UUID] = set()
            for append in appends:
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
                for event in append.events:
                    index = len(self._log)
                    self._log.append(
                        (
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
            if self._inline is not None and len(self._log) > start:
                try:
                    self._inline.call(None, self._log[start:])
                except BaseException:
                    self._forget(start)
                    raise
            return results

    def _forget(self, start: int) -> None:
        """Take back the rows from index ``start`` on: an inline projection refused them."""
        for row in reversed(self._log[start:]):
            del self._ids[row[4]]
            indexes = self._streams[row[0]]
            indexes.pop()
            if not indexes:
                del self._streams[row[0]]
        del self._log[start:]

    async def _locate(self, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, int]]:
        with self._lock:
            rows = {i: self._log[self._ids[i]] for i in event_ids if i in self._ids}
        return {i: (row[0], row[1], row[2]) for i, row in rows.items()}

    async def _read_stream_page(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[Row]:
        with self._lock:
            indexes = self._streams.get(stream_id, [])
            stop = len(indexes) if to_version is None else min(to_version, len(indexes))
            start = max(from_version, 1) - 1
            return [self._log[i] for i in indexes[start : min(stop, start + limit)]]

    async def _read_all_page(
        self, after: Checkpoint, types: tuple[str, ...] | None, limit: int
    ) -> list[Row]:
        with self._lock:
            if types is None:
                return self._log[after.position : after.position + limit]
            wanted = frozenset(types)
            rows: list[Row] = []
            for index in range(after.position, len(self._log)):
                row = self._log[index]
                if row[5] in wanted:
                    rows.append(row)
                    if len(rows) == limit:
                        break
            return rows

    async def _streams_page(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        with self._lock:
            ids = sorted(self._streams)
            start = 0 if after is None else bisect.bisect_right(ids, after)
            return [(i, len(self._streams[i])) for i in ids[start : start + limit]]

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        with self._lock:
            by_version = self._snapshots.setdefault(snapshot.stream_id, {})
            by_version[snapshot.version] = snapshot
            for version in sorted(by_version)[:-SNAPSHOT_CANDIDATES]:
                del by_version[version]

    async def read_snapshots(self, stream_id: str, limit: int = 3) -> list[SnapshotRecord]:
        with self._lock:
            by_version = self._snapshots.get(stream_id, {})
            return [by_version[v] for v in sorted(by_version, reverse=True)[:limit]]
