"""The contract's aggregate type tests: a stream remembers the type that created it."""

from __future__ import annotations

import pytest

from facta.aggregate import Aggregate
from facta.appending import StreamAppend
from facta.errors import WrongAggregateType
from facta.ids import new_id
from facta.repository_async import AsyncRepository
from facta.store_async import AsyncEventStore
from facta.testing._support_async import ANY, NO_STREAM, happened, numbers, read
from facta.testing.events import Happened

__all__ = ["AsyncStreamTypeContract"]


class Tally(Aggregate):
    """Adds up the ``Happened`` numbers of its stream."""

    type_name = "facta.testing.Tally"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0

    def add(self, n: int) -> None:
        self.record(Happened(n))

    def apply(self, event: object) -> None:
        if isinstance(event, Happened):
            self.total += event.n


class Ledger(Tally):
    """The same events under another aggregate type."""

    type_name = "facta.testing.Ledger"


async def replay(store: AsyncEventStore, stream_id: str, aggregate_type: str) -> list[int]:
    """The versions ``replay_stream`` yields when it replays as ``aggregate_type``."""
    pages = store.replay_stream(stream_id, aggregate_type=aggregate_type, batch_size=2)
    return [version async for page in pages for version, _ in page]


async def type_of(store: AsyncEventStore, stream_id: str) -> str | None:
    """The aggregate type the store recorded for the stream."""
    info = await store.stream_info(stream_id)
    return None if info is None else info.aggregate_type


class AsyncStreamTypeContract:
    """A stream records the aggregate type that created it and refuses any other."""

    async def test_an_append_that_creates_a_stream_records_its_aggregate_type(
        self, store: AsyncEventStore
    ) -> None:
        typed, plain = new_id(), new_id()
        await store.append(typed, happened(1), NO_STREAM, aggregate_type="Cart")
        await store.append(plain, happened(1), NO_STREAM)
        assert await type_of(store, typed) == "Cart"
        assert await type_of(store, plain) is None
        assert await type_of(store, new_id()) is None

    async def test_an_append_as_another_type_is_refused_naming_both_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), NO_STREAM, aggregate_type="Cart")
        for expected in (1, ANY, 7):  # the type is checked before the version
            with pytest.raises(WrongAggregateType) as raised:
                await store.append(stream, happened(2), expected, aggregate_type="Account")
            assert (raised.value.recorded, raised.value.given) == ("Cart", "Account")
            assert "to aggregate type 'Cart', not 'Account'" in str(raised.value)
        with pytest.raises(WrongAggregateType):
            await store.append(stream, [], 1, aggregate_type="Account")
        assert numbers(await read(store, stream)) == [1]

    async def test_an_append_many_with_one_stream_of_another_type_writes_no_stream(
        self, store: AsyncEventStore
    ) -> None:
        cart, fresh = new_id(), new_id()
        await store.append(cart, happened(1), NO_STREAM, aggregate_type="Cart")
        with pytest.raises(WrongAggregateType):
            await store.append_many(
                [
                    StreamAppend(fresh, happened(1), NO_STREAM, "Account"),
                    StreamAppend(cart, happened(2), 1, "Account"),
                ]
            )
        assert await store.stream_version(fresh) == 0
        assert await store.stream_version(cart) == 1
        assert await type_of(store, fresh) is None

    async def test_appends_of_the_same_type_and_plain_appends_go_into_a_typed_stream(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), NO_STREAM, aggregate_type="Cart")
        await store.append(stream, happened(2), 1, aggregate_type="Cart")
        await store.append(stream, happened(3), ANY)
        assert numbers(await read(store, stream)) == [1, 2, 3]
        assert await type_of(store, stream) == "Cart"

    async def test_a_stream_of_plain_appends_takes_any_type_and_stays_untyped(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), NO_STREAM)
        await store.append(stream, happened(2), 1, aggregate_type="Cart")
        await store.append(stream, happened(3), 2, aggregate_type="Account")
        assert await type_of(store, stream) is None
        assert await replay(store, stream, "Account") == [1, 2, 3]

    async def test_a_replay_as_another_type_raises_before_any_page(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1, 2, 3), NO_STREAM, aggregate_type="Cart")
        assert await replay(store, stream, "Cart") == [1, 2, 3]
        with pytest.raises(WrongAggregateType, match="'Cart'"):
            await replay(store, stream, "Account")
        # A replay that starts past the stream's end still says whose it is.
        pages = store.replay_stream(stream, 4, aggregate_type="Account")
        with pytest.raises(WrongAggregateType):
            [page async for page in pages]
        assert await replay(store, new_id(), "Account") == []

    async def test_a_repository_refuses_to_load_or_save_another_type_s_aggregate(
        self, store: AsyncEventStore
    ) -> None:
        tallies, ledgers = AsyncRepository(store, Tally), AsyncRepository(store, Ledger)
        tally = Tally(new_id())
        tally.add(5)
        await tallies.save(tally)
        with pytest.raises(WrongAggregateType, match=r"facta\.testing\.Tally"):
            await ledgers.load(tally.id)
        impostor = Ledger(tally.id)
        impostor.version = 1
        impostor.add(1)
        with pytest.raises(WrongAggregateType):
            await ledgers.save(impostor)
        with pytest.raises(WrongAggregateType):
            await ledgers.update(tally.id, lambda ledger: ledger.add(1))
        assert (await tallies.load(tally.id)).total == 5

    async def test_a_repository_loads_a_stream_of_plain_appends(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(2, 3), NO_STREAM)
        assert (await AsyncRepository(store, Ledger).load(stream)).total == 5
