"""Repository.update under contention, async commands, and what a repository refuses.

Twenty commands on one hot aggregate all succeed under the default retry policy, on every
backend, from threads (sync) and tasks (async), ten rounds in a row.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

import facta


@facta.event("tests.contention.Counted")
@dataclass(frozen=True)
class Counted:
    by: int


class Counter(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0

    def count(self, by: int = 1) -> None:
        self.record(Counted(by))

    def apply(self, event: object) -> None:
        match event:
            case Counted(by=by):
                self.total += by


COMMANDS = 20
ROUNDS = 10


def test_twenty_concurrent_updates_from_threads_all_succeed(url: str) -> None:
    with facta.connect(url) as store:
        repo = facta.Repository(store, Counter)
        for round_ in range(ROUNDS):
            counter = Counter()
            counter.count()
            repo.save(counter)
            start = threading.Barrier(COMMANDS)
            failures: list[BaseException] = []
            threads = [
                threading.Thread(target=count_once, args=(repo, counter.id, start, failures))
                for _ in range(COMMANDS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == [], f"round {round_}"
            assert repo.load(counter.id).total == COMMANDS + 1


def count_once(
    repo: facta.Repository[Counter],
    counter_id: str,
    start: threading.Barrier,
    failures: list[BaseException],
) -> None:
    start.wait()
    try:
        repo.update(counter_id, lambda c: c.count())
    except BaseException as e:
        failures.append(e)


async def test_twenty_concurrent_updates_from_tasks_all_succeed(url: str) -> None:
    async with facta.connect_async(url) as store:
        repo = facta.AsyncRepository(store, Counter)
        for _ in range(ROUNDS):
            counter = Counter()
            counter.count()
            await repo.save(counter)
            updates = [repo.update(counter.id, lambda c: c.count()) for _ in range(COMMANDS)]
            await asyncio.gather(*updates)
            assert (await repo.load(counter.id)).total == COMMANDS + 1


async def test_an_async_command_is_awaited_and_saved() -> None:
    async with facta.connect_async("memory://") as store:
        repo = facta.AsyncRepository(store, Counter)
        counter = Counter()
        counter.count()
        await repo.save(counter)

        async def count_after_a_call(c: Counter) -> None:
            await asyncio.sleep(0)  # e.g. asking another service
            c.count(5)

        await repo.update(counter.id, count_after_a_call)
        assert (await repo.load(counter.id)).total == 6


def test_an_async_command_on_a_sync_repository_is_refused_and_nothing_is_saved() -> None:
    with facta.connect("memory://") as store:
        repo = facta.Repository(store, Counter)
        counter = Counter()
        counter.count()
        repo.save(counter)

        async def count(c: Counter) -> None:
            c.count()

        with pytest.raises(TypeError, match="async command"):
            repo.update(counter.id, count)  # type: ignore[arg-type]
        assert store.stream_version(counter.id) == 1


def test_update_gives_up_at_the_deadline_and_says_how_long_it_tried() -> None:
    with facta.connect("memory://") as store:
        policy = facta.RetryPolicy(attempts=1000, first_delay=0.01, max_delay=0.01, deadline=0.05)
        repo = facta.Repository(store, Counter, retry=policy)
        counter = Counter()
        counter.count()
        repo.save(counter)

        def overtaken(c: Counter) -> None:
            store.append(c.id, [Counted(1)], facta.ANY)  # another writer gets there first
            c.count()

        with pytest.raises(facta.RetriesExhausted, match=r"attempts in 0\.\d\d s") as raised:
            repo.update(counter.id, overtaken)
        assert 1 < raised.value.attempts < 1000


@pytest.mark.parametrize(
    "settings",
    [
        {"attempts": 0},
        {"first_delay": -1.0},
        {"first_delay": 1.0, "max_delay": 0.5},
        {"deadline": 0},
    ],
)
def test_a_retry_policy_refuses_values_that_make_no_sense(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"attempts|delays|deadline"):
        facta.RetryPolicy(**settings)  # type: ignore[arg-type]


def test_a_repository_needs_an_aggregate_class_and_a_store_of_its_flavour() -> None:
    with facta.connect("memory://") as store, pytest.raises(TypeError, match="Aggregate subclass"):
        facta.Repository(store, "Counter")  # type: ignore[arg-type]
    async_store = facta.connect_async("memory://")
    with pytest.raises(TypeError, match="works on an EventStore"):
        facta.Repository(async_store, Counter)  # type: ignore[arg-type]
