"""The contract's subscription tests: the log after a checkpoint, then new events; durable
subscriptions resume after their last acknowledged event and run one at a time per name."""

from __future__ import annotations

import pytest

from facta.errors import ProjectionLocked, StoreError
from facta.events import RecordedEvent
from facta.ids import new_id
from facta.store_async import AsyncEventStore
from facta.subscriptions_async import AsyncSubscription
from facta.testing._read_model import unique_name
from facta.testing._support_async import ANY, happened, head, projected

__all__ = ["AsyncSubscriptionContract"]

POLL = 0.02  # the subscriptions' poll interval: a missed wake-up costs the tests little


async def take(subscription: AsyncSubscription, count: int) -> list[RecordedEvent]:
    """The next ``count`` events the subscription hands out."""
    taken: list[RecordedEvent] = []
    if count:
        async for event in subscription:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


async def take_from(
    subscription: AsyncSubscription, stream: str, count: int
) -> list[RecordedEvent]:
    """The next ``count`` events of ``stream`` the subscription hands out (others'
    events, of a shared store, are passed over)."""
    taken: list[RecordedEvent] = []
    async for event in subscription:
        if event.stream_id == stream:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


def mine(events: list[RecordedEvent], *streams: str) -> list[tuple[str, int]]:
    """(stream, number) of the events of these streams, in the order given."""
    return [(e.stream_id, e.data.n) for e in events if e.stream_id in streams]


class AsyncSubscriptionContract:
    """``store.subscribe``: catch up from a checkpoint, then follow; durable by name."""

    async def test_a_subscription_yields_the_log_after_its_checkpoint_then_new_events(
        self, store: AsyncEventStore
    ) -> None:
        start, stream = await head(store), new_id()
        await store.append(stream, happened(1, 2), ANY)
        async with store.subscribe(start, poll_interval=POLL) as events:
            caught_up = await take(events, 2)
            await store.append(stream, happened(3), ANY)
            followed = await take(events, 1)
        assert mine(caught_up + followed, stream) == [(stream, 1), (stream, 2), (stream, 3)]
        assert events.checkpoint == followed[-1].checkpoint

    async def test_a_subscription_keeps_only_the_types_it_asks_for(
        self, store: AsyncEventStore
    ) -> None:
        start, stream = await head(store), new_id()
        await store.append(stream, [*happened(1), *projected(2), *happened(3)], ANY)
        async with store.subscribe(
            start, types=["facta.testing.Projected"], poll_interval=POLL
        ) as events:
            (only,) = await take(events, 1)
        assert (only.stream_id, only.type, only.version) == (stream, "facta.testing.Projected", 2)

    async def test_a_durable_subscription_resumes_after_its_last_acknowledged_event(
        self, store: AsyncEventStore
    ) -> None:
        name, stream = unique_name("subscription"), new_id()
        await store.append(stream, projected(1, 2, 3), ANY)
        types = ["facta.testing.Projected"]
        async with store.subscribe(name=name, types=types, poll_interval=POLL) as events:
            first = await take_from(events, stream, 3)
            await events.ack(first[0])
            await events.ack(first[0])  # again: nothing changes
        async with store.subscribe(name=name, types=types, poll_interval=POLL) as events:
            again = await take_from(events, stream, 2)
            await events.ack(again[-1])
        assert mine(again, stream) == [(stream, 2), (stream, 3)]
        await store.append(stream, projected(4), ANY)
        async with store.subscribe(name=name, types=types, poll_interval=POLL) as events:
            latest = await take_from(events, stream, 1)
        assert mine(latest, stream) == [(stream, 4)]

    async def test_a_second_durable_subscription_of_one_name_is_refused(
        self, store: AsyncEventStore
    ) -> None:
        name = unique_name("subscription")
        async with store.subscribe(name=name, poll_interval=POLL):
            second = store.subscribe(name=name, poll_interval=POLL)
            with pytest.raises(ProjectionLocked):
                await second.open()
        async with store.subscribe(name=name, poll_interval=POLL):
            pass  # the first one's lock was released when it closed

    async def test_only_a_durable_subscription_takes_acknowledgements(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        (event,) = [e async for e in store.read_stream(stream)]
        events = store.subscribe(poll_interval=POLL)
        with pytest.raises(StoreError, match="durable"):
            await events.ack(event)

    async def test_a_durable_subscription_needs_a_name_or_a_checkpoint_not_both(
        self, store: AsyncEventStore
    ) -> None:
        with pytest.raises(ValueError, match="name or after"):
            store.subscribe(await head(store), name=unique_name("subscription"))
