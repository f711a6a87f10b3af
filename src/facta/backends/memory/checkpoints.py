# WARNING: generated from src/facta/backends/memory/checkpoints_async.py by tools/gen_sync.py; do not edit.
"""Projection checkpoints of the memory backend: kept in its recorder, in the same process.

Nothing here is transactional: a read model outside the store sees each event at least once,
so its handlers must be idempotent. Inboxes keep their streams' versions and held messages
here too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from facta.errors import ProjectionLocked
from facta.events import Checkpoint, RecordedEvent
from facta.recorder import Checkpoints, Recorder
from facta.records import DeadLetter, HeldMessage, InboxStream, ProjectionStatus, shown_state

__all__ = ["Book", "MemoryCheckpoints"]


@dataclass
class _Row:
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    state: str = ""
    types: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Book:
    """Every projection's row, lock and dead letters for one memory store."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[str, _Row] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    dead_letters: dict[str, list[DeadLetter]] = field(default_factory=dict)
    inbox_streams: dict[str, dict[str, InboxStream]] = field(default_factory=dict)
    inbox_held: dict[str, list[HeldMessage]] = field(default_factory=dict)

    def statuses(self, recorder: Recorder) -> list[ProjectionStatus]:
        with self.lock:
            rows = sorted(self.rows.items())
            held = set(self.held)
            parked = {name: len(letters) for name, letters in self.dead_letters.items()}
        result = []
        for name, row in rows:
            lag = _lag(recorder, row.checkpoint, row.types)
            state = shown_state(row.state, name in held)
            shown = ProjectionStatus(
                name, row.checkpoint, lag, state, row.error, parked.get(name, 0)
            )
            result.append(shown)
        return result


class MemoryCheckpoints(Checkpoints):
    """Checkpoints in a dict beside the memory store; the lock is a set of running names."""

    transactional = False

    def __init__(self, recorder: Recorder, book: Book, name: str) -> None:
        super().__init__(name)
        self._recorder, self._book = recorder, book
        self._locked = False

    def open(self, wait: bool, poll_interval: float) -> None:
        book = self._book
        while True:
            with book.lock:
                if self.name not in book.held:
                    book.held.add(self.name)
                    book.rows.setdefault(self.name, _Row())
                    self._locked = True
                    return
            if not wait:
                raise ProjectionLocked(self.name, "in this process")
            time.sleep(poll_interval)

    def close(self) -> None:
        if self._locked:
            with self._book.lock:
                self._book.held.discard(self.name)
            self._locked = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield None

    def _row(self) -> _Row:
        return self._book.rows[self.name]

    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        with self._book.lock:
            row = self._row()
            row.state, row.types, row.error = state, types, None
            return row.checkpoint

    def save(self, connection: object, before: Checkpoint, after: Checkpoint) -> None:
        with self._book.lock:
            self._row().checkpoint = after

    def reset(self, connection: object) -> None:
        with self._book.lock:
            self._row().checkpoint = Checkpoint()
            self._book.dead_letters.pop(self.name, None)

    def park(self, connection: object, event: RecordedEvent, error: str) -> None:
        with self._book.lock:
            parked = self._book.dead_letters.setdefault(self.name, [])
            parked.append(
                DeadLetter(
                    event.stream_id,
                    event.version,
                    event.position,
                    event.transaction_id,
                    event.event_id,
                    event.type,
                    error,
                    datetime.now(UTC),
                )
            )

    def finish(self, state: str, error: str | None = None) -> None:
        with self._book.lock:
            row = self._row()
            row.state, row.error = state, error

    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        return _lag(self._recorder, after, types)

    def dead_letters(self) -> list[DeadLetter]:
        with self._book.lock:
            return list(self._book.dead_letters.get(self.name, ()))

    # -- inboxes ---------------------------------------------------------------------------

    def inbox_streams(
        self, connection: object, stream_ids: Collection[str]
    ) -> dict[str, InboxStream]:
        with self._book.lock:
            known = self._book.inbox_streams.get(self.name, {})
            return {i: known[i] for i in stream_ids if i in known}

    def save_inbox_streams(self, connection: object, streams: Sequence[InboxStream]) -> None:
        with self._book.lock:
            known = self._book.inbox_streams.setdefault(self.name, {})
            latest = {s.stream_id: s.version for s in streams}
            known.update((s.stream_id, s) for s in streams)
            held = self._book.inbox_held.get(self.name, [])
            held[:] = [
                m
                for m in held
                if not (
                    m.error is None
                    and m.stream_id in latest
                    and m.version is not None
                    and m.version <= latest[m.stream_id]
                )
            ]

    def hold(self, connection: object, message: HeldMessage) -> None:
        with self._book.lock:
            self._book.inbox_held.setdefault(self.name, []).append(message)

    def parked(self, connection: object, stream_id: str) -> list[HeldMessage]:
        with self._book.lock:
            held = self._book.inbox_held.get(self.name, [])
            found = [m for m in held if m.error is None and m.stream_id == stream_id]
        return sorted(found, key=lambda m: m.version or 0)

    def held(self) -> list[HeldMessage]:
        with self._book.lock:
            return list(self._book.inbox_held.get(self.name, ()))


def _lag(recorder: Recorder, after: Checkpoint, types: tuple[str, ...]) -> int:
    count = 0
    while types:
        page = recorder.read_all(after, types, 10_000)
        count += len(page)
        if len(page) < 10_000:
            break
        after = page[-1].checkpoint
    return count
