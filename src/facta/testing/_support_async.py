"""What the contract suite's tests share: constants, events to write, and read helpers."""

from __future__ import annotations

import asyncio  # sync: drop
import time
from collections.abc import Callable
from typing import Any

from facta.appending import ExpectedVersion
from facta.events import Checkpoint, RecordedEvent
from facta.snapshots import SnapshotRecord, checksum
from facta.store_async import AsyncEventStore
from facta.testing.events import Happened, Projected

__all__ = [
    "ANY",
    "EVENTS_EACH",
    "MAX_CONFLICTS",
    "NO_STREAM",
    "PATIENCE_POLLS",
    "PATIENCE_SLEEP",
    "STREAM_EXISTS",
    "WRITERS",
    "assert_nothing_written",
    "happened",
    "head",
    "log_after",
    "numbers",
    "projected",
    "read",
    "snapshot",
    "wait_until",
]

ANY, NO_STREAM, STREAM_EXISTS = (
    ExpectedVersion.ANY,
    ExpectedVersion.NO_STREAM,
    ExpectedVersion.STREAM_EXISTS,
)

# The racing tests: how many writers, and how many events each of them appends.
WRITERS = 8
EVENTS_EACH = 5
# How many times a racing writer may meet a conflict before the test gives up on the store.
MAX_CONFLICTS = 10_000
# How long a tailing reader waits, once every writer is done, for the last events to show.
PATIENCE_POLLS, PATIENCE_SLEEP = 200, 0.01


def happened(*numbers: int) -> list[Happened]:
    """One ``Happened`` event per number."""
    return [Happened(n) for n in numbers]


def projected(*numbers: int) -> list[Projected]:
    """One ``Projected`` event (what the contract's projections read) per number."""
    return [Projected(n) for n in numbers]


def numbers(events: list[RecordedEvent]) -> list[int]:
    """The ``n`` of each ``Happened`` event read."""
    return [e.data.n for e in events]


def snapshot(stream_id: str, version: int, state: bytes = b"state") -> SnapshotRecord:
    """A snapshot record of ``state`` at ``version``."""
    return SnapshotRecord(
        stream_id, version, "facta.testing.Aggregate", 1, 0, checksum(state), state
    )


async def read(
    store: AsyncEventStore, stream_id: str, *args: Any, **kw: Any
) -> list[RecordedEvent]:
    """Everything ``read_stream`` yields."""
    return [e async for e in store.read_stream(stream_id, *args, **kw)]


async def log_after(store: AsyncEventStore, after: Checkpoint, **kw: Any) -> list[RecordedEvent]:
    """Everything ``read_all`` yields after a checkpoint."""
    return [e async for e in store.read_all(after, **kw)]


async def head(store: AsyncEventStore) -> Checkpoint:
    """The checkpoint of the global log's last event: tests measure the log from there."""
    last = Checkpoint()
    async for recorded in store.read_all():
        last = recorded.checkpoint
    return last


async def assert_nothing_written(store: AsyncEventStore, start: Checkpoint, *streams: str) -> None:
    """Neither the global log after ``start`` nor any of ``streams`` holds an event."""
    assert await log_after(store, start) == []
    for stream_id in streams:
        assert await store.stream_version(stream_id) == 0


async def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
