"""Upcasters: chains of pure steps that turn old stored versions into the code's current ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

import facta
from facta import Codec, EventRegistry, UnknownEventType, UpcastError, Upcasters
from facta.upcasting import default_snapshot_upcasters, default_upcasters

# -- pure: the chain itself ---------------------------------------------------------------------


def version_of(versions: dict[str, int]) -> Any:
    return versions.get


def test_chain_applies_each_step_in_order_until_the_current_version() -> None:
    casts = Upcasters()
    casts.register("T", 1, lambda d: {**d, "trail": [*d["trail"], 1]})
    casts.register("T", 2, lambda d: {**d, "trail": [*d["trail"], 2]})

    assert casts.upcast("T", 1, {"trail": []}, version_of({"T": 3})) == ("T", 3, {"trail": [1, 2]})


def test_chain_starting_at_the_current_version_runs_no_step() -> None:
    casts = Upcasters()
    casts.register("T", 1, lambda d: pytest.fail("must not run"))

    assert casts.upcast("T", 2, {"x": 1}, version_of({"T": 2})) == ("T", 2, {"x": 1})


def test_rename_step_moves_to_the_new_type_at_version_1() -> None:
    casts = Upcasters()
    casts.register("Old", 3, lambda d: d, to_type="New")

    assert casts.upcast("Old", 3, {}, version_of({"New": 1})) == ("New", 1, {})


def test_rename_step_can_reach_a_later_version_of_the_new_type() -> None:
    casts = Upcasters()

    @casts.upcaster("Old", 1, to_type="New", to_version=2)
    def rename(data: dict[str, Any]) -> dict[str, Any]:
        return {"name": data["title"]}

    assert casts.upcast("Old", 1, {"title": "a"}, version_of({"New": 2})) == (
        "New",
        2,
        {"name": "a"},
    )


def test_missing_step_names_the_stored_type_and_version_and_the_missing_step() -> None:
    casts = Upcasters()
    casts.register("T", 1, lambda d: d)

    with pytest.raises(UpcastError) as raised:
        casts.upcast("T", 1, {}, version_of({"T": 3}), "stream 's' version 4: ")

    message = str(raised.value)
    assert message.startswith("stream 's' version 4: type 'T' schema version 1: ")
    assert "no upcaster from 'T' version 2 (the code is at 3)" in message
    assert "@upcaster('T', 2)" in message


def test_missing_step_for_a_type_gone_from_the_code_asks_for_a_rename() -> None:
    with pytest.raises(UpcastError, match=r"the code has no type of that name.*to_type="):
        Upcasters().upcast("Gone", 1, {}, version_of({}))


def test_version_newer_than_the_code_says_so() -> None:
    with pytest.raises(UpcastError, match="stored at version 5, newer than version 2 in the code"):
        Upcasters().upcast("T", 5, {}, version_of({"T": 2}))


def test_failing_upcaster_raises_upcast_error_naming_the_step_and_the_cause() -> None:
    casts = Upcasters()
    casts.register("T", 1, lambda d: d)

    @casts.upcaster("T", 2)
    def needs_amount(data: dict[str, Any]) -> dict[str, Any]:
        return {"cents": data["amount"] * 100}

    with pytest.raises(UpcastError) as raised:
        casts.upcast("T", 1, {}, version_of({"T": 3}))

    message = str(raised.value)
    assert message.startswith("type 'T' schema version 1: upcaster ")
    assert "needs_amount" in message
    assert "from 'T' version 2" in message
    assert "KeyError: 'amount'" in message
    assert isinstance(raised.value.__cause__, KeyError)


def test_upcaster_returning_something_else_than_a_dict_raises_upcast_error() -> None:
    casts = Upcasters()
    casts.register("T", 1, lambda d: [d])  # type: ignore[arg-type,return-value]

    with pytest.raises(UpcastError, match="returned list, not a dict"):
        casts.upcast("T", 1, {}, version_of({"T": 2}))


def test_chain_that_loops_raises_upcast_error() -> None:
    casts = Upcasters()
    casts.register("A", 1, lambda d: d, to_type="B")
    casts.register("B", 1, lambda d: d, to_type="A")

    with pytest.raises(UpcastError, match="loops"):
        casts.upcast("A", 1, {}, version_of({}))


def test_registering_a_second_step_for_the_same_version_is_refused() -> None:
    casts = Upcasters()
    casts.register("T", 1, lambda d: d)

    with pytest.raises(ValueError, match="already exists"):
        casts.register("T", 1, lambda d: d)


@pytest.mark.parametrize("version", [0, -1, True, "1"])
def test_registering_a_step_from_an_invalid_version_is_refused(version: Any) -> None:
    with pytest.raises(ValueError, match="from_version"):
        Upcasters().register("T", version, lambda d: d)


def test_registering_a_step_that_leads_to_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="leads to itself"):
        Upcasters().register("T", 2, lambda d: d, to_version=2)


def test_destination_follows_renames_without_running_steps() -> None:
    casts = Upcasters()
    casts.register("A", 1, lambda d: pytest.fail("must not run"), to_type="B")
    casts.register("B", 1, lambda d: pytest.fail("must not run"))

    assert casts.destination("A", 1) == "B"
    assert casts.destination("C", 1) == "C"


# -- through the codec and the store ------------------------------------------------------------

old = EventRegistry()  # the code as it was when the events were written
new = EventRegistry()  # the code now
casts = Upcasters()


@facta.event("test_upcasting.Deposited", registry=old)
@dataclass(frozen=True)
class DepositedV1:
    amount: int


@facta.event("test_upcasting.Paid", registry=old)
@dataclass(frozen=True)
class Paid:
    amount: int


@facta.event("test_upcasting.Deposited", version=3, registry=new)
@dataclass(frozen=True)
class Deposited:
    cents: int
    currency: str


@facta.event("test_upcasting.PaymentReceived", registry=new)
@dataclass(frozen=True)
class PaymentReceived:
    amount: int


@casts.upcaster("test_upcasting.Deposited", 1)
def add_currency(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


@casts.upcaster("test_upcasting.Deposited", 2)
def amount_in_cents(data: dict[str, Any]) -> dict[str, Any]:
    return {"cents": data["amount"] * 100, "currency": data["currency"]}


casts.register("test_upcasting.Paid", 1, lambda d: d, to_type="test_upcasting.PaymentReceived")


class Account(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.cents = 0

    def apply(self, event: object) -> None:
        match event:
            case Deposited(cents=cents) | PaymentReceived(amount=cents):
                self.cents += cents


async def write_old(store: facta.AsyncEventStore, stream_id: str, events: list[object]) -> int:
    """Append events with the old code; the position of the last one."""
    store.codec = Codec(old)
    result = await store.append(stream_id, events, facta.ANY)
    store.codec = Codec(new, casts)
    return result.position


async def test_stored_v1_events_read_as_the_current_v3_class(
    async_store: facta.AsyncEventStore,
) -> None:
    await write_old(async_store, "acc-1", [DepositedV1(5), DepositedV1(7)])

    events = [e async for e in async_store.read_stream("acc-1")]

    assert [e.data for e in events] == [Deposited(500, "EUR"), Deposited(700, "EUR")]
    assert [e.schema_version for e in events] == [1, 1]  # as stored


async def test_stored_events_of_a_renamed_type_read_as_the_new_class(
    async_store: facta.AsyncEventStore,
    readable_async: Callable[[facta.AsyncEventStore], Awaitable[None]],
) -> None:
    await write_old(async_store, "acc-1", [Paid(3)])
    await readable_async(async_store)

    events = [e.data async for e in async_store.read_all()]

    assert events == [PaymentReceived(3)]


async def test_aggregate_loads_from_upcasted_events(async_store: facta.AsyncEventStore) -> None:
    await write_old(async_store, "acc-1", [DepositedV1(5), Paid(3)])

    account = await facta.AsyncRepository(async_store, Account).load("acc-1")

    assert (account.cents, account.version) == (503, 2)


async def test_events_at_the_current_version_are_never_upcast(
    async_store: facta.AsyncEventStore,
) -> None:
    registry, never = EventRegistry(), Upcasters()
    registry.register(Deposited, "test_upcasting.Deposited", 3)
    never.register("test_upcasting.Deposited", 3, lambda d: pytest.fail("must not run"))
    async_store.codec = Codec(registry, never)
    await async_store.append("acc-1", [Deposited(1, "EUR")], facta.ANY)

    assert [e.data async for e in async_store.read_stream("acc-1")] == [Deposited(1, "EUR")]


def failing_casts(third_step: Any) -> Upcasters:
    broken = Upcasters()
    broken.register("test_upcasting.Deposited", 1, add_currency)
    broken.register("test_upcasting.Deposited", 2, third_step)
    return broken


async def read_error(
    store: facta.AsyncEventStore, codec: Codec, error: type[Exception] = UpcastError
) -> tuple[str, int]:
    """The message of the error that reading stream "acc-1" (1 good event, 1 old) raises."""
    store.codec = Codec(new)
    await store.append(
        "acc-1", [Deposited(1, "EUR")], facta.ANY
    )  # current: decodes without upcasting
    position = await write_old(store, "acc-1", [DepositedV1(5)])
    store.codec = codec
    with pytest.raises(error) as raised:
        _ = [e async for e in store.read_stream("acc-1")]
    return str(raised.value), position


def assert_names_the_event(message: str, position: int) -> None:
    assert message.startswith(
        f"stream 'acc-1' version 2 (position {position}): type 'test_upcasting.Deposited' "
        "schema version 1: "
    ), message


async def test_failing_upcaster_raises_upcast_error_naming_stream_version_position_type(
    async_store: facta.AsyncEventStore,
) -> None:
    def explode(data: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    message, position = await read_error(async_store, Codec(new, failing_casts(explode)))

    assert_names_the_event(message, position)
    assert "RuntimeError: boom" in message


async def test_missing_chain_step_raises_upcast_error_naming_stream_version_position_type(
    async_store: facta.AsyncEventStore,
) -> None:
    gap = Upcasters()
    gap.register("test_upcasting.Deposited", 1, add_currency)

    message, position = await read_error(async_store, Codec(new, gap))

    assert_names_the_event(message, position)
    assert "no upcaster from 'test_upcasting.Deposited' version 2 (the code is at 3)" in message


async def test_upcaster_output_that_does_not_decode_raises_upcast_error_naming_the_event(
    async_store: facta.AsyncEventStore,
) -> None:
    def forgets_currency(data: dict[str, Any]) -> dict[str, Any]:
        return {"cents": data["amount"] * 100}

    message, position = await read_error(async_store, Codec(new, failing_casts(forgets_currency)))

    assert_names_the_event(message, position)
    assert "upcasted to 'test_upcasting.Deposited' version 3, which does not decode" in message
    assert "currency" in message


async def test_upcaster_output_of_the_wrong_type_is_not_coerced(
    async_store: facta.AsyncEventStore,
) -> None:
    def cents_as_text(data: dict[str, Any]) -> dict[str, Any]:
        return {"cents": str(data["amount"] * 100), "currency": data["currency"]}

    message, position = await read_error(async_store, Codec(new, failing_casts(cents_as_text)))

    assert_names_the_event(message, position)
    assert "Expected `int`, got `str`" in message


async def test_unknown_type_without_upcaster_raises_unknown_event_type_naming_the_event(
    async_store: facta.AsyncEventStore,
) -> None:
    message, _ = await read_error(async_store, Codec(EventRegistry()), UnknownEventType)

    assert message.startswith("stream 'acc-1' version 1 (position "), message
    assert "no event class is registered for type 'test_upcasting.Deposited'" in message


async def test_read_all_raises_the_same_named_upcast_error(
    async_store: facta.AsyncEventStore,
    readable_async: Callable[[facta.AsyncEventStore], Awaitable[None]],
) -> None:
    position = await write_old(async_store, "acc-1", [DepositedV1(5)])
    await readable_async(async_store)
    async_store.codec = Codec(new, Upcasters())

    with pytest.raises(UpcastError) as raised:
        _ = [e async for e in async_store.read_all()]

    assert str(raised.value).startswith(
        f"stream 'acc-1' version 1 (position {position}): type 'test_upcasting.Deposited' "
        "schema version 1: "
    )


def test_default_set_is_extended_by_the_upcaster_decorator() -> None:
    @facta.upcaster("test_upcasting.DefaultOnly", 1)
    def step(data: dict[str, Any]) -> dict[str, Any]:
        return data

    assert default_upcasters.reads("test_upcasting.DefaultOnly")
    assert not default_snapshot_upcasters.reads("test_upcasting.DefaultOnly")
