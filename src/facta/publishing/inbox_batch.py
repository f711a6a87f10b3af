"""One transaction of an inbox (:class:`Batch`): the messages of a batch applied, dropped as
duplicates, parked or refused, as their streams' versions say; and the policies that decide
(:class:`Gaps`, :class:`InboxError`).

A batch reads how far the inbox got in each stream of its messages, then takes them in the
order the broker gave: a message at or below its stream's version is a duplicate; the next
version is applied (the projection's handler, if it handles the type), and then the versions
after it that are in hand or parked; a later version waits, to the end of the batch, for the
ones before it, and is then parked or refused. The new versions are recorded before the
transaction commits. The :class:`~facta.publishing.inbox.Inbox` acknowledges what the batch
says only after that.
"""

from __future__ import annotations

import enum
import inspect
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from facta.codec import Codec
from facta.errors import DecodeError, FactaError, UnknownEventType, UpcastError
from facta.lifecycle import Deleted
from facta.projections.errors import OnError
from facta.projections.write import writes_of
from facta.publishing.received import InvalidMessage, Received, event_of, read_headers
from facta.publishing.source import Delivery
from facta.recorder_async import AsyncCheckpoints
from facta.records import HeldMessage, InboxStream

__all__ = [
    "Batch",
    "Failure",
    "Gaps",
    "InboxError",
    "Item",
    "Key",
    "Rules",
    "describe",
    "describe_key",
    "item_for",
]

log = logging.getLogger("facta.publishing")

# (stream id, version, event id): one event, as the retry of a failing batch names it.
Key = tuple[str, int, uuid.UUID]
# (index of the message being taken, the failing event, the handler's exception)
Failure = tuple[int, Key, Exception]


class Gaps(enum.Enum):
    """What an inbox does with an event past the next version its stream expects."""

    PARK = "park"  # keep it in this store (acknowledged); apply it once the versions before it came
    REFUSE = "refuse"  # leave it unacknowledged: the broker delivers it again after a delay
    ACCEPT = "accept"  # apply it now: the versions before it never come (a filtered source)


class InboxError(FactaError):
    """An inbox stopped (``on_error=OnError.STOP``) at a message it could not apply: a handler
    raised, the message does not read or decode, or it conflicts with an event applied before.
    The message is left unacknowledged at the broker (or parked, if it was), so it is met
    again when the inbox starts again."""

    def __init__(self, inbox: str, what: str, reason: str, *, parked: bool = False) -> None:
        self.inbox, self.what, self.reason = inbox, what, reason
        left = (
            "it stays parked in the inbox's store"
            if parked
            else "it is left unacknowledged at the broker"
        )
        super().__init__(
            f"inbox {inbox!r} stopped at {what}: {reason}; {left}: fix the cause and start the "
            "inbox again (or run it with on_error=OnError.DEAD_LETTER to keep such messages in "
            "its dead letters and go on)"
        )


@dataclass(frozen=True)
class Rules:
    """What a batch needs to know of its inbox."""

    name: str
    gaps: Gaps
    join_midway: bool
    on_error: OnError
    handlers: dict[type, Callable[..., Any]]  # event class -> the projection's bound handler
    types: frozenset[str]  # the stored type names the handlers take (renamed ones included)
    codec: Codec


@dataclass(slots=True)
class Item:
    """A message in hand: from the broker (``delivery``) or parked in the store (None)."""

    subject: str
    headers: dict[str, str]
    data: bytes
    delivery: Delivery | None
    received: Received | None  # None: its headers do not read
    problem: str = ""  # why they do not

    @property
    def key(self) -> Key | None:
        r = self.received
        return None if r is None else (r.stream_id, r.version, r.event_id)


def item_for(delivery: Delivery) -> Item:
    try:
        received: Received | None = read_headers(delivery.headers)
        problem = ""
    except InvalidMessage as e:
        received, problem = None, str(e)
    return Item(delivery.subject, delivery.headers, delivery.data, delivery, received, problem)


def _parked_item(message: HeldMessage) -> Item:
    return Item(message.subject, message.headers, message.data, None, read_headers(message.headers))


def describe(item: Item) -> str:
    """An item as messages name it: the event, or the subject of a message that does not read."""
    r = item.received
    if r is None:
        return f"a message on {item.subject!r}"
    return f"event {r.type!r} {r.event_id} (stream {r.stream_id!r} version {r.version})"


def describe_key(key: Key) -> str:
    return f"event {key[2]} (stream {key[0]!r} version {key[1]})"


class _Stopped(Exception):
    """Ends a batch at a message that stops the inbox (``OnError.STOP``); what came before
    commits."""

    def __init__(self, error: InboxError) -> None:
        super().__init__(error)
        self.error = error


class _Failed(Exception):
    """Carries a handler's failure out of the transaction, which then rolls back."""

    def __init__(self, index: int, key: Key, cause: Exception) -> None:
        super().__init__(index, key, cause)
        self.index, self.key, self.cause = index, key, cause


@dataclass
class Batch:
    """One transaction's work: what it applied, parked, acknowledged and refused.

    ``parked`` is the inbox's index of its parked messages (stream -> version -> event id);
    the batch works on a copy, which the inbox takes over once the transaction committed.
    ``give_up`` names events to put in the dead letters instead of applying them; ``halt``
    one to stop before, and why (both set by the inbox while it isolates a failing event).
    """

    rules: Rules
    checkpoints: AsyncCheckpoints
    known_parked: dict[str, dict[int, str | None]]
    give_up: dict[Key, str]
    halt: tuple[Key, str] | None  # a parked event to stop before, and why
    recover: bool = False
    connection: Any = None
    index: int = 0
    marks: dict[str, InboxStream] = field(default_factory=dict)
    changed: dict[str, InboxStream] = field(default_factory=dict)
    waiting: dict[str, dict[int, Item]] = field(default_factory=dict)  # gaps in hand
    stored: dict[str, dict[int, HeldMessage]] = field(default_factory=dict)  # parked, read
    parked: dict[str, dict[int, str | None]] = field(default_factory=dict)
    acks: list[Delivery] = field(default_factory=list)
    refusals: list[Delivery] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    stopped: InboxError | None = None

    async def attempt(self, items: Sequence[Item]) -> Failure | None:
        """Process ``items`` in one transaction; the handler failure that rolled it back (or,
        where the store is not transactional, ended it), if one did."""
        checkpoints = self.checkpoints
        self.parked = {stream: dict(versions) for stream, versions in self.known_parked.items()}
        streams = {item.received.stream_id for item in items if item.received is not None}
        if self.recover:
            streams |= set(self.parked)
        kept: _Failed | None = None
        try:
            async with checkpoints.transaction() as connection:
                self.connection = connection
                try:
                    self.marks = await checkpoints.inbox_streams(connection, streams)
                    if self.recover:
                        for stream in sorted(self.parked):
                            await self._drain(stream)
                    for self.index, item in enumerate(items):
                        await self._take(item)
                except _Stopped as stop:  # what came before it commits
                    self.stopped = stop.error
                except _Failed as failed:
                    if checkpoints.transactional:
                        raise  # roll back
                    kept = failed  # the store kept what was written before it
                await self._leave_gaps()
                if self.changed and checkpoints.transactional:
                    await checkpoints.save_inbox_streams(connection, list(self.changed.values()))
        except _Failed as failed:
            return failed.index, failed.key, failed.cause
        return None if kept is None else (kept.index, kept.key, kept.cause)

    # -- one message ---------------------------------------------------------------------

    async def _take(self, item: Item) -> None:
        """Apply, drop, park or refuse one message from the broker, as its version says."""
        r = item.received
        if r is None:
            await self._reject(item, item.problem)
            return
        rules = self.rules
        mark = self.marks.get(r.stream_id)
        # A stream's messages from before the last lifecycle marker applied to it (by the
        # sending store's position, which grows along a stream) are repeats: that marker and
        # the earlier life of a hard-deleted stream whose id was reused.
        if mark is not None and r.position <= mark.marker:
            self._duplicate(item)
            return
        if r.version < 0:  # a lifecycle marker (facta.lifecycle): apart from the versions
            await self._apply(item)
            await self._drain(r.stream_id)
            return
        midway = rules.join_midway or rules.gaps is Gaps.ACCEPT
        if midway and _unseen(self.marks.get(r.stream_id)) and r.stream_id in self.parked:
            await self._drain(r.stream_id)  # a stream that may start mid-way: at its first parked
        mark = self.marks.get(r.stream_id)
        last = 0 if mark is None else mark.version
        if mark is not None and r.version <= last:
            if r.version == last and r.event_id != mark.event_id:
                await self._reject(item, _conflict(r, mark.event_id, "applied"))
                return
            self._duplicate(item)
            await self._drain(r.stream_id)
            return
        parked = self.parked.get(r.stream_id, {})
        if r.version in parked:
            if parked[r.version] != str(r.event_id):
                await self._reject(item, _conflict(r, parked[r.version], "parked"))
                return
            self._duplicate(item)
            return
        in_hand = self.waiting.get(r.stream_id, {}).get(r.version)
        if in_hand is not None:
            if in_hand.received is not None and in_hand.received.event_id != r.event_id:
                await self._reject(item, _conflict(r, in_hand.received.event_id, "received"))
                return
            self._duplicate(item)
            return
        if (
            r.version == last + 1
            or rules.gaps is Gaps.ACCEPT
            or (_unseen(mark) and rules.join_midway)
        ):
            await self._apply(item)
            await self._drain(r.stream_id)
        else:
            self.waiting.setdefault(r.stream_id, {})[r.version] = item

    def _duplicate(self, item: Item) -> None:
        self.duplicates += 1
        if item.delivery is not None:
            self.acks.append(item.delivery)

    async def _drain(self, stream_id: str) -> None:
        """Apply the stream's next versions while they are in hand or parked."""
        while True:
            mark = self.marks.get(stream_id)
            following = (0 if mark is None else mark.version) + 1
            parked = self.parked.get(stream_id)
            if (
                _unseen(mark)
                and parked
                and (self.rules.join_midway or self.rules.gaps is Gaps.ACCEPT)
            ):
                following = min(parked)  # a stream that may start mid-way starts at its first
            in_hand = self.waiting.get(stream_id, {}).pop(following, None)
            if in_hand is not None:
                await self._apply(in_hand)
                continue
            if following not in self.parked.get(stream_id, {}):
                return
            if stream_id not in self.stored:
                found = await self.checkpoints.parked(self.connection, stream_id)
                self.stored[stream_id] = {m.version: m for m in found if m.version is not None}
            message = self.stored[stream_id].get(following)
            if message is None:  # the index was wrong: the store is the truth
                self.parked[stream_id].pop(following, None)
                return
            await self._apply(_parked_item(message))

    async def _apply(self, item: Item) -> None:
        """Call the handler of the event (if the projection handles its type) and record its
        version; acknowledge its message."""
        r = item.received
        assert r is not None
        key = (r.stream_id, r.version, r.event_id)
        rules = self.rules
        if self.halt is not None and key == self.halt[0]:
            raise _Stopped(InboxError(rules.name, describe(item), self.halt[1], parked=True))
        if key in self.give_up:
            await self._reject(item, self.give_up[key], advance=True)
            return
        reuse = False
        if r.type in rules.types or r.type == _DELETED:
            try:
                event = event_of(r, item.data, rules.codec)
            except (DecodeError, UnknownEventType, UpcastError) as e:
                await self._reject(item, str(e), advance=True)
                return
            # A hard deletion with reuse: the stream's id starts anew at version 1.
            reuse = r.version < 0 and isinstance(event.data, Deleted) and event.data.reuse
            handler = rules.handlers.get(type(event.data))
            if handler is not None:
                try:
                    outcome = handler(event, self.connection)
                    if inspect.isawaitable(outcome):
                        outcome = await outcome
                    for write in writes_of(outcome):  # at once: messages are not batched
                        done = self.connection.execute(write.sql, write.params)
                        if inspect.isawaitable(done):
                            await done
                except Exception as e:
                    raise _Failed(self.index, key, e) from e
        await self._advance(r, applied=True, reuse=reuse)
        if item.delivery is not None:
            self.acks.append(item.delivery)

    async def _advance(self, r: Received, *, applied: bool, reuse: bool = False) -> None:
        """Record that the stream reached ``r``'s version (its parked messages up to it go);
        for a marker, that the stream reached that marker (its versions stay, unless ``reuse``
        starts them anew)."""
        old = self.marks.get(r.stream_id)
        if r.version >= 0:
            mark = InboxStream(r.stream_id, r.version, r.event_id, 0 if old is None else old.marker)
        elif reuse or old is None:
            mark = InboxStream(r.stream_id, 0, r.event_id, r.position)
        else:
            mark = old._replace(marker=r.position)
        self.marks[r.stream_id] = self.changed[r.stream_id] = mark
        self.applied += applied
        parked = self.parked.get(r.stream_id)
        if parked:
            for version in [v for v in parked if v <= r.version]:
                del parked[version]
            if not parked:
                del self.parked[r.stream_id]
        if not self.checkpoints.transactional:  # nothing commits later: write it now
            await self.checkpoints.save_inbox_streams(self.connection, [mark])

    async def _reject(self, item: Item, reason: str, *, advance: bool = False) -> None:
        """A message that cannot be applied: stop (``OnError.STOP``) or keep it in the dead
        letters, and (``advance``) let its stream go on past it."""
        rules = self.rules
        if rules.on_error is OnError.STOP:
            parked = item.delivery is None
            raise _Stopped(InboxError(rules.name, describe(item), reason, parked=parked))
        r = item.received
        await self.checkpoints.hold(
            self.connection,
            HeldMessage(
                None if r is None else r.stream_id,
                None if r is None else r.version,
                item.headers.get("Facta-Event-Id") if r is None else str(r.event_id),
                item.subject,
                item.headers,
                item.data,
                reason,
                datetime.now(UTC),
            ),
        )
        self.dead_lettered += 1
        log.warning("inbox %r: %s went to the dead letters: %s", rules.name, describe(item), reason)
        if advance and r is not None:
            await self._advance(r, applied=False)
        if item.delivery is not None:
            self.acks.append(item.delivery)

    async def _leave_gaps(self) -> None:
        """The events still waiting for earlier versions at the end of the batch: parked in the
        store, or refused (``Gaps.REFUSE``)."""
        for stream_id, versions in self.waiting.items():
            for version, item in sorted(versions.items()):
                assert item.delivery is not None  # from the broker: parked ones never wait
                assert item.received is not None
                if self.rules.gaps is Gaps.REFUSE:
                    self.refusals.append(item.delivery)
                    continue
                event_id = str(item.received.event_id)
                await self.checkpoints.hold(
                    self.connection,
                    HeldMessage(
                        stream_id,
                        version,
                        event_id,
                        item.subject,
                        item.headers,
                        item.data,
                        None,
                        datetime.now(UTC),
                    ),
                )
                self.parked.setdefault(stream_id, {})[version] = event_id
                self.acks.append(item.delivery)
        self.waiting.clear()


_DELETED = "facta.StreamDeleted"  # the marker whose reuse restarts a stream's versions


def _unseen(mark: InboxStream | None) -> bool:
    """Whether no version of the stream was applied yet (markers aside)."""
    return mark is None or mark.version == 0


def _conflict(r: Received, other: object, how: str) -> str:
    return (
        f"conflict: the inbox {how} event {other} as version {r.version} of stream "
        f"{r.stream_id!r}, and this message says that version is event {r.event_id}; are two "
        "stores publishing streams of the same ids to this broker?"
    )
