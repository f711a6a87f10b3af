"""The contract's inbox tests: what a backend keeps for an inbox (the versions each stream
reached, parked messages, dead letters), through the public :class:`facta.publishing.Inbox`.

Async only, as inboxes are. The messages come from a :class:`Queue`, a source that lives in
the test, made from events that never were in any store (a sending store is not needed to
test the receiving one). The read model is the contract's in-memory ``ReadModel``: its
``applied`` is what stays (a rolled-back batch applies an event again, as the memory store
does), so the tests assert on that and on what the inbox recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import pytest

from facta.events import default_registry
from facta.ids import new_id
from facta.lifecycle import Deleted
from facta.projections import OnError
from facta.publishing import message_for
from facta.publishing.inbox import Gaps, Inbox, InboxError
from facta.publishing.source import Delivery, Source
from facta.records import StoredEvent
from facta.store_async import AsyncEventStore
from facta.testing._lifecycle_async import Watcher
from facta.testing._projections_async import AsyncTally
from facta.testing._read_model import ReadModel, unique_name
from facta.testing.events import Projected

__all__ = ["AsyncInboxContract", "Queue", "sent"]

_TYPE = "facta.testing.Projected"


def _delivery(stream_id: str, version: int, position: int, data: object) -> Delivery:
    """``data`` (a registered event) as a relay sends it, from ``stream_id`` at ``version``
    and ``position``."""
    row = StoredEvent(
        stream_id,
        version,
        position,
        0,
        uuid.uuid4(),
        default_registry.type_of(data).name,
        1,
        0,
        msgspec.json.encode(data),
        b"{}",
        datetime.now(UTC),
    )
    message = message_for(row, None, None)
    return Delivery(message.subject, message.headers, message.data, object())


def sent(
    stream_id: str, *numbers: int, first: int = 1, position: int | None = None
) -> list[Delivery]:
    """Messages as a relay sends them: ``Projected(n)`` for each number, versions ``first``,
    ``first + 1``... of ``stream_id`` (at the same positions, or from ``position`` on)."""
    start = first if position is None else position
    return [
        _delivery(stream_id, version, start + version - first, Projected(n))
        for version, n in enumerate(numbers, first)
    ]


class Queue(Source):
    """A source in the test: delivers what it is given, in order, and remembers what the inbox
    acknowledged and refused."""

    def __init__(self, *deliveries: Delivery) -> None:
        self.waiting = list(deliveries)
        self.acknowledged: list[Delivery] = []
        self.refused: list[Delivery] = []
        self.opened: list[str] = []

    def deliver(self, *deliveries: Delivery) -> None:
        self.waiting.extend(deliveries)

    async def open(self, inbox: str) -> None:
        self.opened.append(inbox)

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
        if not taken:
            await asyncio.sleep(wait)  # as a broker's subscription waits for messages
        return taken

    async def acknowledge(self, deliveries: Sequence[Delivery]) -> None:
        self.acknowledged.extend(deliveries)

    async def refuse(self, deliveries: Sequence[Delivery], delay: float) -> None:
        self.refused.extend(deliveries)

    async def close(self) -> None:
        pass


def inbox(
    store: AsyncEventStore,
    model: ReadModel,
    source: Queue,
    name: str,
    *,
    gaps: Gaps = Gaps.PARK,
    on_error: OnError = OnError.STOP,
    join_midway: bool = False,
    batch_size: int = 100,
) -> Inbox:
    return Inbox(
        store,
        AsyncTally(name, model),
        source,
        name=name,
        gaps=gaps,
        on_error=on_error,
        join_midway=join_midway,
        batch_size=batch_size,
    )


def numbers(model: ReadModel, stream: str) -> list[int]:
    """What the read model holds of a stream, by version."""
    return [n for (s, _), n in sorted(model.applied.items()) if s == stream]


def marked(stream_id: str, version: int, marker: object, position: int) -> Delivery:
    """A lifecycle marker (``facta.lifecycle``) of ``stream_id`` as a relay sends it."""
    return _delivery(stream_id, version, position, marker)


class AsyncInboxContract:
    """An inbox applies each event once and each stream in order, and keeps what it holds."""

    async def test_markers_apply_once_and_a_reused_stream_starts_again_at_version_one(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-markers")
        old = sent(stream, 1, 2)  # positions 1 and 2
        reused = marked(stream, -1, Deleted(hard=True, reuse=True), 3)
        new = sent(stream, 7, position=4)  # the reused id's version 1
        again = marked(stream, -2, Deleted(), 5)
        # What a relay's restarts send again comes again, in the log's order.
        source = Queue(*old, reused, *new, *old, reused, *new, again, again)
        watcher = Watcher(name, {stream})
        async with Inbox(store, watcher, source, name=name) as receiving:
            assert await receiving.catch_up(idle=0) == 5
            assert receiving.duplicates == 5
        assert watcher.seen == [
            (stream, 1, _TYPE),
            (stream, 2, _TYPE),
            (stream, -1, "facta.StreamDeleted"),
            (stream, 1, _TYPE),
            (stream, -2, "facta.StreamDeleted"),
        ]
        assert len(source.acknowledged) == 10

    async def test_an_inbox_applies_each_event_once_however_often_it_comes(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-once")
        messages = sent(stream, 10, 20, 30)
        source = Queue(*messages, *messages[1:], messages[0])
        model = ReadModel({stream})
        async with inbox(store, model, source, name, batch_size=2) as receiving:
            assert await receiving.catch_up(idle=0) == 3
            assert (receiving.duplicates, receiving.parked) == (3, 0)
        assert numbers(model, stream) == [10, 20, 30]
        assert model.calls[:3] == [(stream, 1), (stream, 2), (stream, 3)]
        assert len(source.acknowledged) == 6  # duplicates are acknowledged too
        source.deliver(*messages)  # again, to a new inbox object of the same name
        async with inbox(store, ReadModel({stream}), source, name) as receiving:
            assert await receiving.catch_up(idle=0) == 0
            assert receiving.duplicates == 3

    async def test_a_gap_is_parked_and_applied_in_order_when_the_missing_versions_come(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-gap")
        messages = sent(stream, 1, 2, 3, 4)
        source = Queue(messages[2], messages[3], messages[2])
        model = ReadModel({stream})
        async with inbox(store, model, source, name) as receiving:
            assert await receiving.catch_up(idle=0) == 0
            assert (receiving.parked, receiving.duplicates) == (2, 1)
            held = await receiving.held()
        assert [(m.stream_id, m.version, m.error) for m in held] == [
            (stream, 3, None),
            (stream, 4, None),
        ]
        assert held[0].data == messages[2].data
        assert held[0].headers == messages[2].headers
        assert held[0].event_id == messages[2].headers["Facta-Event-Id"]
        assert model.calls == []
        assert len(source.acknowledged) == 3  # parked messages are acknowledged: kept here
        source.deliver(messages[1], messages[0])  # to a new inbox object: parked ones are read
        async with inbox(store, model, source, name) as receiving:
            assert receiving.parked == 2
            assert await receiving.catch_up(idle=0) == 4
            assert receiving.parked == 0
            assert await receiving.held() == []
        assert model.calls == [(stream, 1), (stream, 2), (stream, 3), (stream, 4)]

    async def test_refuse_hands_a_gap_back_to_the_broker_and_keeps_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-refuse")
        messages = sent(stream, 1, 2, 3)
        source = Queue(messages[2], messages[0])
        model = ReadModel({stream})
        async with inbox(store, model, source, name, gaps=Gaps.REFUSE) as receiving:
            assert await receiving.catch_up(idle=0) == 1
            assert source.refused == [messages[2]]
            assert source.acknowledged == [messages[0]]
            assert await receiving.held() == []
            source.deliver(messages[1], *source.refused)  # the broker delivers it again
            assert await receiving.catch_up(idle=0) == 2
        assert model.calls == [(stream, 1), (stream, 2), (stream, 3)]

    async def test_accept_applies_what_comes_after_a_gap_and_drops_what_comes_late(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-accept")
        messages = sent(stream, 1, 2, 3, 4)
        source = Queue(messages[1], messages[3], messages[2])
        model = ReadModel({stream})
        async with inbox(store, model, source, name, gaps=Gaps.ACCEPT) as receiving:
            assert await receiving.catch_up(idle=0) == 2
            assert receiving.duplicates == 1  # version 3, after 4: too late
        assert model.calls == [(stream, 2), (stream, 4)]

    async def test_join_midway_starts_an_unseen_stream_at_the_first_version_that_comes(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-midway")
        messages = sent(stream, 5, 6, 8, first=5)  # versions 5, 6, 7
        source = Queue(messages[0], messages[2], messages[1])
        model = ReadModel({stream})
        async with inbox(store, model, source, name, join_midway=True) as receiving:
            assert await receiving.catch_up(idle=0) == 3
        assert model.calls == [(stream, 5), (stream, 6), (stream, 7)]
        other, parked = new_id(), unique_name("inbox-from-start")
        later = ReadModel({other})
        async with inbox(store, later, Queue(*sent(other, 5, first=5)), parked) as receiving:
            await receiving.catch_up(idle=0)
            assert receiving.parked == 1  # without join_midway, versions 1-4 are awaited
        async with inbox(store, later, Queue(), parked, join_midway=True) as receiving:
            assert await receiving.catch_up(idle=0) == 1  # with it, the parked one starts it
        assert later.calls == [(other, 5)]

    async def test_another_event_at_a_version_already_applied_is_a_conflict(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-conflict")
        first, impostor = sent(stream, 1), sent(stream, 99)
        source = Queue(*first, *impostor)
        model = ReadModel({stream})
        async with inbox(store, model, source, name) as receiving:
            with pytest.raises(InboxError, match="conflict: the inbox applied event") as e:
                await receiving.catch_up(idle=0)
        assert f"stream {stream!r} version 1" in str(e.value)
        assert source.acknowledged == first  # the conflicting message stays at the broker
        dead_letters = inbox(store, model, Queue(*impostor), name, on_error=OnError.DEAD_LETTER)
        async with dead_letters as receiving:
            await receiving.catch_up(idle=0)
            (dead,) = await receiving.held()
        assert dead.version == 1
        assert dead.event_id == impostor[0].headers["Facta-Event-Id"]
        assert dead.error is not None
        assert "conflict" in dead.error
        assert numbers(model, stream) == [1]

    async def test_a_message_without_facta_headers_stops_the_inbox_or_goes_to_dead_letters(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-bad")
        headerless = Delivery("elsewhere.x", {"Facta-Stream": stream}, b"{}", object())
        good = sent(stream, 1, 2)
        source = Queue(good[0], headerless, good[1])
        model = ReadModel({stream})
        async with inbox(store, model, source, name) as receiving:
            with pytest.raises(InboxError, match=r"a message on 'elsewhere\.x'.*no Facta-Event-Id"):
                await receiving.catch_up(idle=0)
        assert source.acknowledged == good[:1]
        assert model.calls == [(stream, 1)]
        source.deliver(headerless, good[1])  # the broker delivers both again
        async with inbox(store, model, source, name, on_error=OnError.DEAD_LETTER) as receiving:
            assert await receiving.catch_up(idle=0) == 1
            (dead,) = await receiving.held()
        assert (dead.stream_id, dead.version, dead.subject) == (None, None, "elsewhere.x")
        assert dead.headers == {"Facta-Stream": stream}
        assert dead.error is not None
        assert "not a facta event" in dead.error
        assert numbers(model, stream) == [1, 2]

    async def test_a_failing_handler_stops_the_inbox_before_its_event_or_dead_letters_it(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-fails")
        messages = sent(stream, 1, 2, 3)
        source = Queue(*messages)
        model = ReadModel({stream}, refuse={2})
        async with inbox(store, model, source, name) as receiving:
            with pytest.raises(InboxError, match="Refused: refused event 2"):
                await receiving.catch_up(idle=0)
        assert source.acknowledged == messages[:1]
        assert numbers(model, stream) == [1]
        source.deliver(*messages[1:])
        async with inbox(store, model, source, name, on_error=OnError.DEAD_LETTER) as receiving:
            assert await receiving.catch_up(idle=0) == 1
            assert receiving.dead_lettered == 1
            (dead,) = await receiving.held()
        assert (dead.stream_id, dead.version) == (stream, 2)
        assert dead.error == f"Refused: refused event 2 of stream {stream!r}"
        assert numbers(model, stream) == [1, 3]  # the stream went on past it
        assert source.acknowledged == messages

    async def test_a_parked_event_whose_handler_fails_stays_parked_until_it_passes(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("inbox-parked-fails")
        messages = sent(stream, 1, 2, 3)
        source = Queue(messages[2], messages[1])
        model = ReadModel({stream}, refuse={3})
        async with inbox(store, model, source, name) as receiving:
            await receiving.catch_up(idle=0)
            assert receiving.parked == 2
            source.deliver(messages[0])
            with pytest.raises(InboxError, match="it stays parked"):
                await receiving.catch_up(idle=0)
            assert receiving.parked == 1
        assert numbers(model, stream) == [1, 2]
        model.refuse.clear()  # the handler is fixed: the next start applies it, unasked
        async with inbox(store, model, Queue(), name) as receiving:
            assert await receiving.catch_up(idle=0) == 1
            assert receiving.parked == 0
        assert numbers(model, stream) == [1, 2, 3]

    async def test_each_inbox_keeps_its_own_streams_and_held_messages(
        self, store: AsyncEventStore
    ) -> None:
        stream, one, two = new_id(), unique_name("inbox-one"), unique_name("inbox-two")
        messages = sent(stream, 1, 2)
        first, second = ReadModel({stream}), ReadModel({stream})
        async with inbox(store, first, Queue(messages[1]), one) as receiving:
            await receiving.catch_up(idle=0)
            assert receiving.parked == 1
        async with inbox(store, second, Queue(*messages), two) as receiving:
            assert await receiving.catch_up(idle=0) == 2
            assert await receiving.held() == []
        async with inbox(store, first, Queue(messages[0]), one) as receiving:
            assert receiving.parked == 1
            assert await receiving.catch_up(idle=0) == 2
        assert first.calls == second.calls == [(stream, 1), (stream, 2)]
