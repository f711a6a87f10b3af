# WARNING: generated from src/facta/testing/_subscribing_async.py by tools/gen_sync.py; do not edit.
"""The contract's subscription tests: the log after a checkpoint, then new events; durable
subscriptions resume after their last acknowledged event and run one at a time per name."""

from __future__ import annotations

import pytest

from facta.errors import ProjectionLocked, StoreError
from facta.events import RecordedEvent
from facta.ids import new_id
from facta.store import EventStore
from facta.subscriptions import Subscription
from facta.testing._read_model import unique_name
from facta.testing._support import ANY, happened, head, projected

__all__ = ["SubscriptionContract"]

POLL = 0.02  # the subscriptions' poll interval: a missed wake-up costs the tests little


def take(subscription: Subscription, count: int) -> list[RecordedEvent]:
    """The next ``count`` events the subscription hands out."""
    taken: list[RecordedEvent] = []
    if count:
        for event in subscription:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


def take_from(subscription: Subscription, stream: str, count: int) -> list[RecordedEvent]:
    """The next ``count`` events of ``stream`` the subscription hands out (others'
    events, of a shared store, are passed over)."""
    taken: list[RecordedEvent] = []
    for event in subscription:
        if event.stream_id == stream:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


def mine(events: list[RecordedEvent], *streams: str) -> list[tuple[str, int]]:
    """(stream, number) of the events of these streams, in the order given."""
    return [(e.stream_id, e.data.n) for e in events if e.stream_id in streams]


class SubscriptionContract:
    """``store.subscribe``: catch up from a checkpoint, then follow; durable by name."""

    def test_a_subscription_yields_the_log_after_its_checkpoint_then_new_events(
        self, store: EventStore
    ) -> None:
        start, stream = head(store), new_id()
        store.append(stream, happened(1, 2), ANY)
        with store.subscribe(start, poll_interval=POLL) as events:
            caught_up = take(events, 2)
            store.append(stream, happened(3), ANY)
            followed = take(events, 1)
        assert mine(caught_up + followed, stream) == [(stream, 1), (stream, 2), (stream, 3)]
        assert events.checkpoint == followed[-1].checkpoint

    def test_a_subscription_keeps_only_the_types_it_asks_for(self, store: EventStore) -> None:
        start, stream = head(store), new_id()
        store.append(stream, [*happened(1), *projected(2), *happened(3)], ANY)
        with store.subscribe(
            start, types=["facta.testing.Projected"], poll_interval=POLL
        ) as events:
            (only,) = take(events, 1)
        assert (only.stream_id, only.type, only.version) == (stream, "facta.testing.Projected", 2)

    def test_a_durable_subscription_resumes_after_its_last_acknowledged_event(
        self, store: EventStore
    ) -> None:
        name, stream = unique_name("subscription"), new_id()
        store.append(stream, projected(1, 2, 3), ANY)
        types = ["facta.testing.Projected"]
        with store.subscribe(name=name, types=types, poll_interval=POLL) as events:
            first = take_from(events, stream, 3)
            events.ack(first[0])
            events.ack(first[0])  # again: nothing changes
        with store.subscribe(name=name, types=types, poll_interval=POLL) as events:
            again = take_from(events, stream, 2)
            events.ack(again[-1])
        assert mine(again, stream) == [(stream, 2), (stream, 3)]
        store.append(stream, projected(4), ANY)
        with store.subscribe(name=name, types=types, poll_interval=POLL) as events:
            latest = take_from(events, stream, 1)
        assert mine(latest, stream) == [(stream, 4)]

    def test_a_second_durable_subscription_of_one_name_is_refused(self, store: EventStore) -> None:
        name = unique_name("subscription")
        with store.subscribe(name=name, poll_interval=POLL):
            second = store.subscribe(name=name, poll_interval=POLL)
            with pytest.raises(ProjectionLocked):
                second.open()
        with store.subscribe(name=name, poll_interval=POLL):
            pass  # the first one's lock was released when it closed

    def test_only_a_durable_subscription_takes_acknowledgements(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1), ANY)
        (event,) = [e for e in store.read_stream(stream)]
        events = store.subscribe(poll_interval=POLL)
        with pytest.raises(StoreError, match="durable"):
            events.ack(event)

    def test_a_durable_subscription_needs_a_name_or_a_checkpoint_not_both(
        self, store: EventStore
    ) -> None:
        with pytest.raises(ValueError, match="name or after"):
            store.subscribe(head(store), name=unique_name("subscription"))
