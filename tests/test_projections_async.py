"""The async runner: async handlers, sync ones where the connection is sync, cancellation."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import facta
from facta.projections import (
    AsyncProjection,
    AsyncProjectionRunner,
    OnError,
    Projection,
    handles,
    statuses_async,
)


@facta.event("test.projections_async.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@facta.event("test.projections_async.Withdrawn")
@dataclass(frozen=True)
class Withdrawn:
    amount: int


@facta.event("test.projections_async.Noted")
@dataclass(frozen=True)
class Noted:
    text: str


TYPES = ["test.projections_async.Deposited", "test.projections_async.Withdrawn"]
Totals = dict[str, tuple[int, int]]  # stream id -> (balance, events applied)


def change(event: facta.RecordedEvent) -> int:
    data = event.data
    return data.amount if isinstance(data, Deposited) else -data.amount


class MemoryTotals(Projection[None]):
    name = "totals"

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    @handles(Deposited, Withdrawn)
    def changed(self, event: facta.RecordedEvent, connection: None) -> None:
        balance, count = self.totals.get(event.stream_id, (0, 0))
        self.totals[event.stream_id] = (balance + change(event), count + 1)


class SQLiteTotals(Projection[sqlite3.Connection]):
    name = "totals"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS totals"
            " (stream_id TEXT PRIMARY KEY, balance INTEGER NOT NULL, events INTEGER NOT NULL)"
        )

    def reset(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM totals")

    @handles(Deposited, Withdrawn)
    def changed(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO totals VALUES (?, ?, 1) ON CONFLICT (stream_id) DO UPDATE"
            " SET balance = balance + excluded.balance, events = events + 1",
            (event.stream_id, change(event)),
        )


class AsyncMemoryTotals(AsyncProjection[None]):
    name = "totals"

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    async def reset(self, connection: None) -> None:
        self.totals.clear()

    @handles(Deposited, Withdrawn)
    async def changed(self, event: facta.RecordedEvent, connection: None) -> None:
        await asyncio.sleep(0)  # a real await: the runner must await handlers
        balance, count = self.totals.get(event.stream_id, (0, 0))
        self.totals[event.stream_id] = (balance + change(event), count + 1)


class AsyncPostgresTotals(AsyncProjection[psycopg.AsyncConnection[Any]]):
    name = "totals"

    async def setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS totals"
            " (stream_id text PRIMARY KEY, balance bigint NOT NULL, events bigint NOT NULL)"
        )

    async def reset(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("DELETE FROM totals")

    @handles(Deposited, Withdrawn)
    async def changed(self, event: facta.RecordedEvent, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "INSERT INTO totals VALUES (%s, %s, 1) ON CONFLICT (stream_id) DO UPDATE"
            " SET balance = totals.balance + excluded.balance, events = totals.events + 1",
            (event.stream_id, change(event)),
        )


class AsyncModel:
    """The totals projection for one async store's backend, and a look at its read model."""

    def __init__(self, store: facta.AsyncEventStore, backend: str) -> None:
        self.store, self.backend = store, backend
        self.memory: Totals = {}

    def projection(self) -> AsyncProjection[Any] | Projection[Any]:
        if self.backend == "memory":
            return AsyncMemoryTotals(self.memory)
        if self.backend == "sqlite":
            return SQLiteTotals()  # sqlite3 is sync: the async runner takes a sync projection
        return AsyncPostgresTotals()

    def runner(self, **options: Any) -> AsyncProjectionRunner[Any]:
        return AsyncProjectionRunner(self.store, self.projection(), **options)

    async def read(self) -> Totals:
        if self.backend == "memory":
            return dict(self.memory)
        async with self.store.recorder.transaction() as conn:  # the read model's database
            if self.backend == "sqlite":
                rows = conn.execute("SELECT * FROM totals").fetchall()
            else:
                rows = await (await conn.execute("SELECT * FROM totals")).fetchall()
        return {stream_id: (balance, count) for stream_id, balance, count in rows}


@pytest.fixture
def model(async_store: facta.AsyncEventStore, backend: str) -> AsyncModel:
    return AsyncModel(async_store, backend)


async def expected(store: facta.AsyncEventStore) -> Totals:
    totals: Totals = {}
    async for event in store.read_all(types=TYPES):
        balance, count = totals.get(event.stream_id, (0, 0))
        totals[event.stream_id] = (balance + change(event), count + 1)
    return totals


async def fill(store: facta.AsyncEventStore, count: int = 12) -> None:
    for i in range(count):
        await store.append(
            f"account-{i % 3}", [Deposited(10 + i), Noted("n"), Withdrawn(i)], facta.ANY
        )
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:  # PostgreSQL: until readers see it all (other sessions hold it back)
        assert await wait(60.0), "the global log stayed held back"


async def caught_up(runner: AsyncProjectionRunner[Any]) -> None:
    """Return once a running runner has applied everything there is."""
    for _ in range(1000):
        if runner.checkpoint != facta.Checkpoint() and await runner.lag() == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the runner did not catch up")


async def moved(runner: AsyncProjectionRunner[Any]) -> None:
    """Return once a running runner has committed a batch (soon after: the test stops it
    mid-run, so this looks at every turn of the event loop, for up to a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if runner.checkpoint != facta.Checkpoint():
            return
        await asyncio.sleep(0)
    raise AssertionError("the runner did not move")


async def test_the_async_runner_applies_every_handled_event_once(
    async_store: facta.AsyncEventStore, model: AsyncModel
) -> None:
    await fill(async_store)
    async with model.runner(batch_size=5) as runner:
        assert await runner.catch_up() == 24
    assert await model.read() == await expected(async_store)


async def test_an_event_parked_mid_batch_leaves_the_batches_read_ahead_applied_once(
    async_store: facta.AsyncEventStore, model: AsyncModel
) -> None:
    await fill(async_store)
    projection: Any = model.projection()
    applied = projection.changed
    refused = Deposited(18)  # the second event of the fourth batch of five

    async def refusing(event: facta.RecordedEvent, connection: Any) -> None:
        if event.data == refused:
            raise ValueError("refused")
        await applied(event, connection)

    def refusing_sync(event: facta.RecordedEvent, connection: Any) -> None:
        if event.data == refused:
            raise ValueError("refused")
        applied(event, connection)

    sync = not inspect.iscoroutinefunction(applied)  # SQLite's projection is sync
    projection.changed = refusing_sync if sync else refusing
    runner = AsyncProjectionRunner(
        async_store, projection, batch_size=5, on_error=OnError.DEAD_LETTER
    )
    async with runner:
        assert await runner.catch_up() == 24
        (parked,) = await runner.dead_letters()
    assert parked.type == "test.projections_async.Deposited"
    totals = await expected(async_store)
    balance, count = totals[parked.stream_id]
    totals[parked.stream_id] = (balance - refused.amount, count - 1)
    assert await model.read() == totals


async def test_rebuild_replays_the_log_into_an_emptied_read_model(
    async_store: facta.AsyncEventStore, model: AsyncModel
) -> None:
    await fill(async_store, 3)
    async with model.runner() as runner:
        await runner.catch_up()
        await fill(async_store, 2)
        assert await runner.rebuild() == 10
    assert await model.read() == await expected(async_store)


async def test_run_follows_new_events_until_stopped(
    async_store: facta.AsyncEventStore, model: AsyncModel
) -> None:
    async with model.runner(poll_interval=0.01) as runner:
        task = asyncio.create_task(runner.run())
        await fill(async_store, 2)
        await caught_up(runner)
        runner.stop()
        await task
    assert await model.read() == await expected(async_store)


async def test_a_cancelled_runner_releases_its_projection_at_a_consistent_checkpoint(
    async_store: facta.AsyncEventStore, model: AsyncModel
) -> None:
    await fill(async_store, 6)
    async with model.runner(batch_size=2, poll_interval=0.01) as runner:
        task = asyncio.create_task(runner.run())
        await moved(runner)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with model.runner() as runner:
        await runner.catch_up()
    assert await model.read() == await expected(async_store)
    (status,) = await statuses_async(async_store)
    assert (status.state, status.lag) == ("stopped", 0)


async def test_the_async_runner_takes_a_sync_projection_on_the_memory_store() -> None:
    async with facta.connect_async("memory://") as store:
        await fill(store, 2)
        totals: Totals = {}
        async with AsyncProjectionRunner(store, MemoryTotals(totals)) as runner:
            await runner.catch_up()
        assert totals == await expected(store)


async def test_sqlite_read_models_commit_in_the_stores_file(tmp_path: Path) -> None:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}") as store:
        await fill(store, 2)
        async with AsyncProjectionRunner(store, SQLiteTotals()) as runner:
            await runner.catch_up()
    with sqlite3.connect(tmp_path / "events.db") as db:
        assert db.execute("SELECT sum(events) FROM totals").fetchone()[0] == 4


async def test_a_sqlite_runner_waits_for_the_write_lock_without_holding_up_the_loop(
    tmp_path: Path,
) -> None:
    # Another task of the same loop holds the store's write transaction: the runner's batch
    # must wait for it asynchronously, or that task could never finish (until the timeout).
    async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}", timeout=5) as store:
        await fill(store, 2)
        released = asyncio.Event()

        async def hold() -> None:
            async with store.recorder.transaction():
                await asyncio.sleep(0.3)
            released.set()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        async with AsyncProjectionRunner(store, SQLiteTotals()) as runner:
            assert await runner.catch_up() == 4
        await holder
        assert released.is_set()
        assert time.monotonic() - started < 4  # not the 5 s timeout
