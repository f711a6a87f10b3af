"""Threads (sync) and tasks (async) racing through the repository and multi-stream appends.

The contract suite races raw appends on one stream; these races go through what users call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

import facta
from facta import ConcurrencyError, NewEvent, StreamAppend
from facta.testing._concurrency import run_concurrently, run_concurrently_async
from facta.testing.events import Happened

WORKERS = 8
ROUNDS = 5


@facta.event("tests.races.Incremented")
@dataclass(frozen=True)
class Incremented:
    worker: int


class Counter(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.by_worker: dict[int, int] = {}

    def increment(self, worker: int) -> None:
        self.record(Incremented(worker))

    def apply(self, event: object) -> None:
        match event:
            case Incremented(worker=worker):
                self.by_worker[worker] = self.by_worker.get(worker, 0) + 1


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides conftest's ``url``: its ``store``/``async_store`` then open these backends."""
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'races.db'}"


def test_threads_updating_one_aggregate_lose_no_update(store: facta.EventStore) -> None:
    repo = facta.Repository(store, Counter)
    counter_id = facta.new_id()

    def worker(number: int) -> None:
        for _ in range(ROUNDS):
            repo.update(counter_id, lambda c: c.increment(number), attempts=1000, create=True)

    run_concurrently([functools.partial(worker, n) for n in range(WORKERS)])
    counter = repo.load(counter_id)
    assert counter.by_worker == dict.fromkeys(range(WORKERS), ROUNDS)
    assert counter.version == WORKERS * ROUNDS


async def test_tasks_updating_one_aggregate_lose_no_update(
    async_store: facta.AsyncEventStore,
) -> None:
    repo = facta.AsyncRepository(async_store, Counter)
    counter_id = facta.new_id()

    async def worker(number: int) -> None:
        for _ in range(ROUNDS):
            await repo.update(counter_id, lambda c: c.increment(number), attempts=1000, create=True)

    await run_concurrently_async([functools.partial(worker, n) for n in range(WORKERS)])
    counter = await repo.load(counter_id)
    assert counter.by_worker == dict.fromkeys(range(WORKERS), ROUNDS)
    assert counter.version == WORKERS * ROUNDS


def paired_appends(
    first: str, second: str, versions: tuple[int, int], n: int
) -> list[StreamAppend]:
    """One event for each of two streams, expecting each at its version: a pair or nothing."""
    return [
        StreamAppend(first, [Happened(n)], versions[0]),
        StreamAppend(second, [Happened(n)], versions[1]),
    ]


def test_threads_appending_to_two_streams_at_once_keep_them_in_step(
    store: facta.EventStore,
) -> None:
    first, second = facta.new_id(), facta.new_id()

    def worker(number: int) -> None:
        for round_ in range(ROUNDS):
            while True:
                versions = (store.stream_version(first), store.stream_version(second))
                try:
                    store.append_many(
                        paired_appends(first, second, versions, number * 100 + round_)
                    )
                    break
                except ConcurrencyError:
                    continue

    run_concurrently([functools.partial(worker, n) for n in range(WORKERS)])
    firsts = [e.data.n for e in store.read_stream(first)]
    assert firsts == [e.data.n for e in store.read_stream(second)]
    assert sorted(firsts) == sorted(w * 100 + r for w in range(WORKERS) for r in range(ROUNDS))


async def test_tasks_appending_to_two_streams_at_once_keep_them_in_step(
    async_store: facta.AsyncEventStore,
) -> None:
    first, second = facta.new_id(), facta.new_id()

    async def worker(number: int) -> None:
        for round_ in range(ROUNDS):
            while True:
                versions = (
                    await async_store.stream_version(first),
                    await async_store.stream_version(second),
                )
                try:
                    await async_store.append_many(
                        paired_appends(first, second, versions, number * 100 + round_)
                    )
                    break
                except ConcurrencyError:
                    continue

    await run_concurrently_async([functools.partial(worker, n) for n in range(WORKERS)])
    firsts = [e.data.n async for e in async_store.read_stream(first)]
    assert firsts == [e.data.n async for e in async_store.read_stream(second)]
    assert sorted(firsts) == sorted(w * 100 + r for w in range(WORKERS) for r in range(ROUNDS))


@pytest.mark.parametrize("expected", [facta.NO_STREAM, facta.ANY])
def test_threads_retrying_one_append_store_it_once(store: facta.EventStore, expected: int) -> None:
    stream = facta.new_id()
    events = [NewEvent(Happened(1)), NewEvent(Happened(2))]
    results = run_concurrently([lambda: store.append(stream, events, expected)] * WORKERS)
    assert sorted(r.already_appended for r in results) == [False] + [True] * (WORKERS - 1)
    assert {(r.version, r.position) for r in results} == {(results[0].version, results[0].position)}
    assert [e.event_id for e in store.read_stream(stream)] == [e.event_id for e in events]


@pytest.mark.parametrize("expected", [facta.NO_STREAM, facta.ANY])
async def test_tasks_retrying_one_append_store_it_once(
    async_store: facta.AsyncEventStore, expected: int
) -> None:
    stream = facta.new_id()
    events = [NewEvent(Happened(1)), NewEvent(Happened(2))]

    async def append() -> facta.AppendResult:
        return await async_store.append(stream, events, expected)

    results = await run_concurrently_async([append] * WORKERS)
    assert sorted(r.already_appended for r in results) == [False] + [True] * (WORKERS - 1)
    assert len({(r.version, r.position) for r in results}) == 1
    assert [e.event_id async for e in async_store.read_stream(stream)] == [
        e.event_id for e in events
    ]
