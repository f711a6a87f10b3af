"""The contract's racing tests: concurrent writers and a tailing reader (threads when sync)."""

from __future__ import annotations

import asyncio  # sync: drop
import functools
import time

from facta.appending import StreamAppend
from facta.errors import ConcurrencyError
from facta.events import RecordedEvent
from facta.ids import new_id
from facta.projections import add_inline_async
from facta.store_async import AsyncEventStore
from facta.testing._concurrency import run_concurrently_async
from facta.testing._projections_async import inline_tally
from facta.testing._read_model import HOLD, PATIENCE, Gate, ReadModel, unique_name
from facta.testing._support_async import (
    ANY,
    EVENTS_EACH,
    MAX_CONFLICTS,
    PATIENCE_POLLS,
    PATIENCE_SLEEP,
    WRITERS,
    happened,
    head,
    log_after,
    numbers,
    projected,
    read,
    wait_until,
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

    async def test_racing_appends_to_shared_streams_keep_each_streams_versions_in_log_order(
        self, store: AsyncEventStore
    ) -> None:
        # Multi-stream appends naming shared streams in every order, and single appends to
        # them: whatever order writers wait and commit in, the log lists each stream's
        # versions in increasing order (a reader applies version 3 after version 2).
        shared = [new_id() for _ in range(3)]
        start = await head(store)

        async def writer(number: int) -> None:
            for event in range(EVENTS_EACH):
                n = number * 100 + event
                first, second = shared[(number + event) % 3], shared[(number + 2 * event) % 3]
                if event % 2 and first != second:
                    await store.append_many(
                        [
                            StreamAppend(first, happened(n), ANY),
                            StreamAppend(second, happened(n), ANY),
                        ]
                    )
                else:
                    await store.append(first, happened(n), ANY)
                await asyncio.sleep(0)

        await run_concurrently_async([functools.partial(writer, n) for n in range(WRITERS)])
        logged = [e for e in await log_after(store, start) if e.stream_id in shared]
        for stream in shared:
            versions = [e.version for e in logged if e.stream_id == stream]
            assert versions == list(range(1, await store.stream_version(stream) + 1))

    async def test_a_reader_tailing_the_log_while_writers_append_sees_every_event_once(
        self, store: AsyncEventStore
    ) -> None:
        streams = [new_id() for _ in range(WRITERS)]
        start = await head(store)
        finished: list[str] = []
        seen: list[RecordedEvent] = []

        async def writer(stream: str) -> None:
            for event in range(EVENTS_EACH):
                await store.append(stream, happened(event, event), ANY)
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

    async def test_a_reader_never_passes_a_writer_that_holds_an_older_position(
        self, store: AsyncEventStore
    ) -> None:
        # Writer A is held inside its append's transaction (by an inline projection waiting in
        # a gate) while writer B appends and a reader tails the log. Where writers commit out
        # of order, B commits first; a reader that moved past B's event would skip A's. Where
        # one writer writes at a time, B waits for A. Either way, once A is let go, the reader
        # must have seen every event exactly once, each stream in order.
        held, later = new_id(), new_id()
        gate = Gate(held)
        model = ReadModel({held, later}, gate=gate)
        await add_inline_async(store, inline_tally(store, unique_name("gate"), model))
        start = await head(store)
        seen: list[RecordedEvent] = []
        finished: list[str] = []
        polls_after_b: list[int] = []

        def ours() -> list[RecordedEvent]:
            return [e for e in seen if e.stream_id in (held, later)]

        async def writer_a() -> None:
            try:
                await store.append(held, projected(1, 2), ANY)
            finally:
                finished.append("a")

        async def writer_b() -> None:
            await wait_until(gate.entered.is_set, PATIENCE)  # A has taken its positions
            try:
                await store.append(later, projected(3), ANY)
            finally:
                finished.append("b")

        async def reader() -> None:
            await wait_until(gate.entered.is_set, PATIENCE)
            checkpoint, deadline, idle = start, time.monotonic() + PATIENCE, 0
            while len(ours()) < 3 and time.monotonic() < deadline and idle < PATIENCE_POLLS:
                b_done, both_done = "b" in finished, len(finished) == 2
                async for recorded in store.read_all(checkpoint, batch_size=1):
                    seen.append(recorded)
                    checkpoint = recorded.checkpoint
                if b_done:
                    polls_after_b.append(len(seen))
                if both_done:  # only the last events can be missing now
                    idle += 1
                    await asyncio.sleep(PATIENCE_SLEEP)
                else:
                    await asyncio.sleep(0.005)

        async def releaser() -> None:
            # Give B the time to commit past A and the reader to poll after it; bounded,
            # since a backend with one writer at a time keeps B waiting until A is done.
            try:
                await wait_until(gate.entered.is_set, PATIENCE)
                await wait_until(lambda: bool(polls_after_b), HOLD)
            finally:
                gate.release()

        try:
            await run_concurrently_async([writer_a, writer_b, reader, releaser])
        finally:
            gate.release()
        assert sorted(finished) == ["a", "b"]
        logged = [e for e in await log_after(store, start) if e.stream_id in (held, later)]
        assert [e.event_id for e in ours()] == [e.event_id for e in logged]
        assert len({e.event_id for e in ours()}) == len(ours()) == 3
        assert [e.version for e in ours() if e.stream_id == held] == [1, 2]
        assert [e.version for e in ours() if e.stream_id == later] == [1]
        assert [e.checkpoint for e in ours()] == sorted(e.checkpoint for e in ours())
