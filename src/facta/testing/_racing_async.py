"""The contract's racing tests: concurrent writers and a tailing reader (threads when sync)."""

from __future__ import annotations

import asyncio  # sync: import time
import functools

from facta.errors import ConcurrencyError
from facta.events import RecordedEvent
from facta.ids import new_id
from facta.store_async import AsyncEventStore
from facta.testing._concurrency import run_concurrently_async
from facta.testing._support_async import (
    EVENTS_EACH,
    MAX_CONFLICTS,
    PATIENCE_POLLS,
    PATIENCE_SLEEP,
    WRITERS,
    happened,
    head,
    log_after,
    numbers,
    read,
)

__all__ = ["AsyncRaceContract"]


class AsyncRaceContract:
    """Concurrent writers and readers: one winner per version, no event lost or repeated."""

    async def test_racing_writers_get_exactly_one_winner_per_version(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)

        async def writer(number: int) -> list[int]:
            won: list[int] = []
            conflicts = 0
            for event in range(EVENTS_EACH):
                while True:
                    version = await store.stream_version(stream)
                    await asyncio.sleep(0)  # let the others read the same version
                    try:
                        result = await store.append(stream, happened(number * 100 + event), version)
                    except ConcurrencyError:
                        conflicts += 1
                        assert conflicts < MAX_CONFLICTS, "a racing writer never got through"
                        continue
                    won.append(result.version)
                    break
            return won

        wins = await run_concurrently_async(
            [functools.partial(writer, number) for number in range(WRITERS)]
        )
        total = WRITERS * EVENTS_EACH
        assert sorted(v for won in wins for v in won) == list(range(1, total + 1))
        stored = await read(store, stream)
        assert [e.version for e in stored] == list(range(1, total + 1))
        expected = sorted(w * 100 + e for w in range(WRITERS) for e in range(EVENTS_EACH))
        assert sorted(numbers(stored)) == expected
        for number, won in enumerate(wins):  # each writer's events are where it was told
            assert [stored[v - 1].data.n for v in won] == [
                number * 100 + e for e in range(EVENTS_EACH)
            ]
        assert await log_after(store, start) == stored

    async def test_a_reader_tailing_the_log_while_writers_append_sees_every_event_once(
        self, store: AsyncEventStore
    ) -> None:
        streams = [new_id() for _ in range(WRITERS)]
        start = await head(store)
        finished: list[str] = []
        seen: list[RecordedEvent] = []

        async def writer(stream: str) -> None:
            for event in range(EVENTS_EACH):
                await store.append(stream, happened(event, event))
                await asyncio.sleep(0)
            finished.append(stream)

        async def reader() -> None:
            checkpoint, idle = start, 0
            while len(seen) < 2 * WRITERS * EVENTS_EACH and idle < PATIENCE_POLLS:
                async for recorded in store.read_all(checkpoint, batch_size=3):
                    seen.append(recorded)
                    checkpoint = recorded.checkpoint
                if len(finished) == WRITERS:  # only the last events can be missing now
                    idle += 1
                    await asyncio.sleep(PATIENCE_SLEEP)
                else:
                    await asyncio.sleep(0)

        calls = [functools.partial(writer, stream) for stream in streams]
        await run_concurrently_async([*calls, functools.partial(reader)])
        ours = [e for e in seen if e.stream_id in streams]
        assert ours == [e for e in await log_after(store, start) if e.stream_id in streams]
        assert len({e.event_id for e in ours}) == len(ours) == 2 * WRITERS * EVENTS_EACH
        for stream in streams:
            versions = [e.version for e in ours if e.stream_id == stream]
            assert versions == list(range(1, 2 * EVENTS_EACH + 1))
