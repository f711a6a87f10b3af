"""The relay's rules, with a broker that lives in the test: what is acknowledged moves the
checkpoint, nothing else does; outages are waited out; one relay per name. (Each real broker
module has its own tests against its server.)"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest

import facta
from facta.events import Checkpoint
from facta.publishing import Broker, BrokerUnavailable, Message, Relay


@facta.event("tests.relay.Shipped")
@dataclass(frozen=True)
class Shipped:
    n: int


class Outbox(Broker):
    """Keeps what it acknowledged; ``refuse`` outages, ``take`` acknowledges only so many."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.refuse = 0  # how many publish calls fail as if the broker were down
        self.take: int | None = None  # acknowledge at most this many of the next call
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        if self.refuse:
            self.refuse -= 1
            raise BrokerUnavailable("connection refused")
        count = len(messages) if self.take is None else min(self.take, len(messages))
        self.take = None
        self.received.extend(messages[:count])
        return count

    async def close(self) -> None:
        self.closed += 1


Readable = Callable[[facta.AsyncEventStore], Awaitable[None]]


def numbers(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.headers["Facta-Stream"], m.headers["Facta-Version"]) for m in messages]


async def test_a_relay_publishes_each_event_once_in_log_order_with_its_stored_bytes(
    async_store: facta.AsyncEventStore, readable_async: Readable
) -> None:
    await async_store.append("order-1", [Shipped(1), Shipped(2)], facta.ANY)
    await async_store.append("order-2", [Shipped(3)], facta.ANY)
    await readable_async(async_store)  # the relay publishes up to the readable end
    broker = Outbox()
    async with Relay(async_store, broker, name="shipping", prefix="shop") as relay:
        assert await relay.catch_up() == 3
        assert await relay.catch_up() == 0
    assert numbers(broker.received) == [("order-1", "1"), ("order-1", "2"), ("order-2", "1")]
    first = broker.received[0]
    (stored,) = [e async for e in async_store.read_stream("order-1", 1, 1)]
    assert first.subject == "shop.tests.relay.Shipped.order-1"
    assert first.event_id == str(stored.event_id)
    assert first.data == b'{"n":1}'
    assert first.headers["Facta-Type"] == "tests.relay.Shipped"
    assert first.checkpoint == stored.checkpoint


async def test_a_relay_resumes_after_what_the_broker_acknowledged(
    async_store: facta.AsyncEventStore, readable_async: Readable
) -> None:
    await async_store.append("order-1", [Shipped(n) for n in range(1, 6)], facta.ANY)
    await readable_async(async_store)
    broker = Outbox()
    broker.take = 2  # the broker acknowledges two of the batch, then the rest on a retry
    async with Relay(async_store, broker, name="partial", max_backoff=0.01) as relay:
        assert await relay.catch_up() == 5
    async with Relay(async_store, broker, name="partial") as relay:
        assert await relay.catch_up() == 0  # the stored checkpoint is past all five
    assert numbers(broker.received) == [("order-1", str(n)) for n in range(1, 6)]


async def test_a_relay_waits_out_a_broker_outage_and_says_so(
    async_store: facta.AsyncEventStore, caplog: pytest.LogCaptureFixture, readable_async: Readable
) -> None:
    await async_store.append("order-1", [Shipped(1)], facta.ANY)
    await readable_async(async_store)
    broker = Outbox()
    broker.refuse = 2
    with caplog.at_level(logging.WARNING, logger="facta.publishing"):
        async with Relay(async_store, broker, name="outage", max_backoff=0.01) as relay:
            assert await relay.catch_up() == 1
    assert numbers(broker.received) == [("order-1", "1")]
    assert broker.opened == 3  # once, then after each outage
    warnings = [r.getMessage() for r in caplog.records if r.name == "facta.publishing"]
    assert len(warnings) == 2
    assert "relay 'outage': the broker is unavailable (connection refused)" in warnings[0]


async def test_a_running_relay_publishes_new_events_as_they_commit(
    async_store: facta.AsyncEventStore,
) -> None:
    broker = Outbox()
    async with Relay(async_store, broker, name="live", poll_interval=0.02) as relay:
        running = asyncio.create_task(relay.run())
        await async_store.append("order-1", [Shipped(1)], facta.ANY)
        # the event reaches the relay once readable: other sessions may hold it back a while
        deadline = time.monotonic() + 60
        for _ in range(6000):
            if broker.received or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        relay.stop()
        await asyncio.wait_for(running, 10)
    assert numbers(broker.received) == [("order-1", "1")]


async def test_one_relay_per_name(async_store: facta.AsyncEventStore) -> None:
    async with Relay(async_store, Outbox(), name="single"):
        with pytest.raises(facta.FactaError, match="already running"):
            await Relay(async_store, Outbox(), name="single").open()


async def test_the_relay_shows_in_the_store_s_projection_statuses(
    async_store: facta.AsyncEventStore, readable_async: Readable
) -> None:
    await async_store.append("order-1", [Shipped(1)], facta.ANY)
    await readable_async(async_store)
    async with Relay(async_store, Outbox(), name="listed") as relay:
        await relay.catch_up()
        checkpoint = relay.checkpoint
    from facta.projections import statuses_async

    (status,) = [s for s in await statuses_async(async_store) if s.name == "listed"]
    assert (status.checkpoint, status.state) == (checkpoint, "stopped")
    assert checkpoint != Checkpoint()
