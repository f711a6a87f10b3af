"""Correlation and causation ids flow from the context into appended events (facta.context)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import facta
from facta.cli import main
from facta.context import Ids, caused_by, causes, correlation, correlation_of, current
from facta.projections import (
    AsyncProjection,
    AsyncProjectionRunner,
    Projection,
    ProjectionRunner,
    handles,
)
from facta.projections.inline import add_inline


@facta.event("test.metadata_context.Ordered")
@dataclass(frozen=True)
class Ordered:
    order: str


@facta.event("test.metadata_context.Shipped")
@dataclass(frozen=True)
class Shipped:
    order: str


class Shop(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.orders: list[str] = []

    def order(self, order: str) -> None:
        self.record(Ordered(order))

    def apply(self, event: object) -> None:
        if isinstance(event, Ordered):
            self.orders.append(event.order)


def recorded(event_id: uuid.UUID, metadata: facta.Metadata) -> facta.RecordedEvent[Ordered]:
    return facta.RecordedEvent(
        "shop-1", 1, 1, event_id, "Ordered", 1, Ordered("o"), metadata, datetime.now(UTC)
    )


def metadata_of(store: facta.EventStore, stream_id: str) -> list[facta.Metadata]:
    return [event.metadata for event in store.read_stream(stream_id)]


@pytest.fixture
def memory_store() -> Iterator[facta.EventStore]:
    with facta.connect("memory://") as store:
        yield store


# -- the store fills in what the context holds ------------------------------------------------


def test_events_appended_inside_a_correlation_get_its_id(store: facta.EventStore) -> None:
    with correlation("req-7f3a"):
        store.append("shop-1", [Ordered("a"), Ordered("b")], facta.NO_STREAM)
    store.append("shop-1", [Ordered("c")], 2)
    assert metadata_of(store, "shop-1") == [
        facta.Metadata(correlation_id="req-7f3a"),
        facta.Metadata(correlation_id="req-7f3a"),
        facta.Metadata(),
    ]


def test_a_correlation_may_name_the_message_that_caused_the_conversation(
    memory_store: facta.EventStore,
) -> None:
    with correlation("req-1", causation_id="msg-9"):
        memory_store.append("shop-1", [Ordered("a")], facta.NO_STREAM)
    assert metadata_of(memory_store, "shop-1") == [facta.Metadata("req-1", "msg-9")]


def test_explicit_metadata_wins_field_by_field(memory_store: facta.EventStore) -> None:
    own_ids = facta.NewEvent(Ordered("a"), metadata=facta.Metadata("mine", "my-cause"))
    own_correlation = facta.NewEvent(
        Ordered("b"), metadata=facta.Metadata(correlation_id="mine", user={"by": "ada"})
    )
    user_only = facta.NewEvent(Ordered("c"), metadata=facta.Metadata(user={"by": "ada"}))
    cause = recorded(uuid.UUID(int=5), facta.Metadata(correlation_id="req-1"))
    with caused_by(cause):
        memory_store.append("shop-1", [own_ids, own_correlation, user_only], facta.NO_STREAM)
    cause_id = str(uuid.UUID(int=5))
    assert metadata_of(memory_store, "shop-1") == [
        facta.Metadata("mine", "my-cause"),
        facta.Metadata("mine", cause_id, {"by": "ada"}),
        facta.Metadata("req-1", cause_id, {"by": "ada"}),
    ]


def test_a_repository_save_inside_a_correlation_gets_its_id_and_keeps_explicit_metadata(
    memory_store: facta.EventStore,
) -> None:
    shops = facta.Repository(memory_store, Shop)
    shop = Shop()
    shop.order("a")
    with correlation("req-1"):
        shops.save(shop)
        shops.update(shop.id, lambda s: s.order("b"), metadata=facta.Metadata(user={"n": 2}))
    assert metadata_of(memory_store, shop.id) == [
        facta.Metadata("req-1"),
        facta.Metadata("req-1", None, {"n": 2}),
    ]


def test_a_lifecycle_marker_gets_the_ids_in_force(memory_store: facta.EventStore) -> None:
    memory_store.append("shop-1", [Ordered("a")], facta.NO_STREAM)
    with correlation("cleanup-3"):
        memory_store.delete_stream("shop-1", 1)
    marker = list(memory_store.read_all())[-1]
    assert marker.type == "facta.StreamDeleted"
    assert marker.metadata.correlation_id == "cleanup-3"


# -- scopes -------------------------------------------------------------------------------------


def test_caused_by_gives_the_event_id_as_cause_and_its_correlation() -> None:
    cause = recorded(uuid.UUID(int=1), facta.Metadata(correlation_id="req-1"))
    with caused_by(cause):
        assert current() == Ids("req-1", str(uuid.UUID(int=1)))
    assert current() == Ids()


def test_causes_names_each_event_in_turn_and_puts_back_the_outer_ids() -> None:
    first = recorded(uuid.UUID(int=4), facta.Metadata(correlation_id="req-4"))
    second = recorded(uuid.UUID(int=5), facta.Metadata())
    with correlation("req-outer"):
        with causes() as cause:
            assert current() == Ids("req-outer", None)  # nothing named yet
            cause(first)
            assert current() == Ids("req-4", str(uuid.UUID(int=4)))
            cause(second)
            assert current() == Ids(str(uuid.UUID(int=5)), str(uuid.UUID(int=5)))
        assert current() == Ids("req-outer", None)

        def failing_handler() -> None:
            with causes() as cause:
                cause(first)
                raise RuntimeError("a handler failed")

        with pytest.raises(RuntimeError):
            failing_handler()
        assert current() == Ids("req-outer", None)
    assert current() == Ids()


def test_an_event_without_a_correlation_is_the_root_of_its_own() -> None:
    root = recorded(uuid.UUID(int=2), facta.Metadata())
    assert correlation_of(root) == str(uuid.UUID(int=2))
    with caused_by(root):
        assert current() == Ids(str(uuid.UUID(int=2)), str(uuid.UUID(int=2)))


def test_nested_scopes_restore_the_outer_ids_on_leaving() -> None:
    cause = recorded(uuid.UUID(int=3), facta.Metadata(correlation_id="req-2"))
    with correlation("req-1"):
        with caused_by(cause):
            assert current() == Ids("req-2", str(uuid.UUID(int=3)))
            with correlation("req-3"):
                assert current() == Ids("req-3", None)
            assert current() == Ids("req-2", str(uuid.UUID(int=3)))
        assert current() == Ids("req-1", None)
    assert current() == Ids()


def test_a_scope_left_by_an_exception_restores_the_outer_ids() -> None:
    with correlation("outer"):
        with pytest.raises(RuntimeError), correlation("inner"):
            raise RuntimeError("boom")
        assert current() == Ids("outer", None)


def test_scopes_refuse_what_is_not_an_id_or_an_event() -> None:
    with pytest.raises(ValueError, match="correlation_id must be a non-empty str"):
        correlation("")
    with pytest.raises(ValueError, match="causation_id must be a non-empty str"):
        correlation("req", causation_id=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="caused_by takes the RecordedEvent"):
        caused_by(Ordered("o"))  # type: ignore[arg-type]


def test_threads_keep_their_own_ids(memory_store: facta.EventStore) -> None:
    both_inside = threading.Barrier(2)

    def request(name: str) -> None:
        with correlation(name):
            both_inside.wait(5)  # the other thread's scope is open too
            memory_store.append(name, [Ordered(name)], facta.NO_STREAM)

    threads = [threading.Thread(target=request, args=(name,)) for name in ("req-a", "req-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert metadata_of(memory_store, "req-a") == [facta.Metadata("req-a")]
    assert metadata_of(memory_store, "req-b") == [facta.Metadata("req-b")]


def test_a_new_thread_starts_with_no_ids_unless_given_a_copy_of_the_context() -> None:
    seen: list[Ids] = []
    with correlation("req-1"):
        plain = threading.Thread(target=lambda: seen.append(current()))
        copied = threading.Thread(
            target=contextvars.copy_context().run, args=(lambda: seen.append(current()),)
        )
        for thread in (plain, copied):
            thread.start()
            thread.join(10)
    assert seen == [Ids(), Ids("req-1", None)]


async def test_tasks_keep_their_own_ids() -> None:
    async with facta.connect_async("memory://") as store:
        both_inside = asyncio.Event()
        inside = 0

        async def request(name: str) -> None:
            nonlocal inside
            with correlation(name):
                inside += 1
                if inside == 2:
                    both_inside.set()
                await both_inside.wait()
                await store.append(name, [Ordered(name)], facta.NO_STREAM)

        await asyncio.gather(request("req-a"), request("req-b"))
        for name in ("req-a", "req-b"):
            assert [e.metadata async for e in store.read_stream(name)] == [facta.Metadata(name)]


async def test_a_task_starts_with_a_copy_that_it_cannot_change_for_its_creator() -> None:
    async def child() -> Ids:
        with correlation("child"):
            await asyncio.sleep(0)
        return current()

    with correlation("parent"):
        task = asyncio.create_task(child())
        inherited = await task
        assert inherited == Ids("parent", None)
        assert current() == Ids("parent", None)


async def test_an_async_sqlite_append_carries_the_ids_into_its_worker_thread(
    tmp_path: Path,
) -> None:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}") as store:
        with correlation("req-1"):
            await store.append("shop-1", [Ordered("a")], facta.NO_STREAM)
        assert [e.metadata async for e in store.read_stream("shop-1")] == [facta.Metadata("req-1")]


# -- handlers run inside caused_by(event) -----------------------------------------------------


class Shipper(Projection[Any]):
    """A process: ships every order by appending to ``target`` (the store it reads, or not)."""

    name = "shipper"

    def __init__(self, target: facta.EventStore) -> None:
        self.target = target

    @handles(Ordered)
    def ordered(self, event: facta.RecordedEvent[Ordered], connection: Any) -> None:
        self.target.append(f"ship-{event.data.order}", [Shipped(event.data.order)], facta.ANY)


@pytest.mark.parametrize(
    "backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_events_a_projection_handler_appends_are_caused_by_the_event_it_handles(
    store: facta.EventStore,
    backend: str,
    tmp_path: Path,
    readable: Callable[[facta.EventStore], None],
) -> None:
    # SQLite: the runner's batch holds the file's write lock, so the handler writes elsewhere
    target = (
        facta.connect(f"sqlite:///{tmp_path / 'shipping.db'}") if backend == "sqlite" else store
    )
    with correlation("req-1"):
        store.append("orders", [Ordered("a")], facta.NO_STREAM)
    store.append("orders", [Ordered("b")], 1)  # a root: its own id is its correlation
    readable(store)
    with ProjectionRunner(store, Shipper(target)) as runner:
        assert runner.catch_up() == 2
    first, second = store.read_stream("orders")
    assert metadata_of(target, "ship-a") == [facta.Metadata("req-1", str(first.event_id))]
    assert metadata_of(target, "ship-b") == [
        facta.Metadata(str(second.event_id), str(second.event_id))
    ]
    assert current() == Ids()
    if target is not store:
        target.close()


class AsyncShipper(AsyncProjection[Any]):
    name = "shipper"

    def __init__(self, target: facta.AsyncEventStore) -> None:
        self.target = target

    @handles(Ordered)
    async def ordered(self, event: facta.RecordedEvent[Ordered], connection: Any) -> None:
        await asyncio.sleep(0)  # the scope spans the handler's awaits
        await self.target.append(f"ship-{event.data.order}", [Shipped(event.data.order)], facta.ANY)


@pytest.mark.parametrize(
    "backend", ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_events_an_async_handler_appends_are_caused_by_the_event_it_handles(
    async_store: facta.AsyncEventStore,
    readable_async: Callable[[facta.AsyncEventStore], Any],
) -> None:
    with correlation("req-1"):
        await async_store.append("orders", [Ordered("a")], facta.NO_STREAM)
    await readable_async(async_store)
    async with AsyncProjectionRunner(async_store, AsyncShipper(async_store)) as runner:
        assert await runner.catch_up() == 1
    (order,) = [e async for e in async_store.read_stream("orders")]
    shipped = [e.metadata async for e in async_store.read_stream("ship-a")]
    assert shipped == [facta.Metadata("req-1", str(order.event_id))]


class SeenIds(Projection[Any]):
    """An inline projection that notes the ids in force in each handler call."""

    name = "seen-ids"

    def __init__(self) -> None:
        self.seen: list[Ids] = []

    @handles(Ordered)
    def ordered(self, event: facta.RecordedEvent[Ordered], connection: Any) -> None:
        self.seen.append(current())


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_inline_projection_handlers_run_inside_caused_by(store: facta.EventStore) -> None:
    seen = SeenIds()
    add_inline(store, seen)
    with correlation("req-1"):
        store.append("orders", [Ordered("a")], facta.NO_STREAM)
    (order,) = store.read_stream("orders")
    assert seen.seen == [Ids("req-1", str(order.event_id))]
    assert current() == Ids()


# -- the command line shows them ----------------------------------------------------------------


def test_facta_log_with_metadata_shows_the_ids_that_flowed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url) as store:
        with correlation("req-1"):
            store.append("orders", [Ordered("a")], facta.NO_STREAM)
        (order,) = store.read_stream("orders")
        with caused_by(order):
            store.append("ship-a", [Shipped("a")], facta.NO_STREAM)
    result = CliRunner().invoke(main, ["log", url, "--metadata"])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert '{"correlation_id":"req-1"}' in rows[0]
    assert f'{{"correlation_id":"req-1","causation_id":"{order.event_id}"}}' in rows[1]
