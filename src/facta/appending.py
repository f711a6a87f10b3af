"""What an append states and what it returns; pure values shared by every backend.

>>> ExpectedVersion.NO_STREAM == 0
True
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Sequence
from typing import NamedTuple

from facta.errors import ConcurrencyError, DuplicateEventId, WrongAggregateType

__all__ = ["AppendResult", "EncodedEvent", "ExpectedVersion", "PreparedAppend", "StreamAppend"]


class ExpectedVersion(enum.IntEnum):
    """What an append expects of its stream; an exact version (int >= 0) is also accepted.

    ``NO_STREAM`` is version 0: the stream holds no events yet.
    """

    ANY = -1
    NO_STREAM = 0
    STREAM_EXISTS = -2


class StreamAppend(NamedTuple):
    """One stream's part of an atomic multi-stream append; it states what it expects.

    ``aggregate_type`` (as repositories give it) is recorded when the append creates the
    stream, and refused for a stream created with another one.
    """

    stream_id: str
    events: Sequence[object]
    expected_version: int
    aggregate_type: str | None = None


class AppendResult(NamedTuple):
    """The outcome of one stream's append.

    ``version`` is the stream's version after it, ``position`` the global position of its
    last event (0 when no event was given), and ``already_appended`` says the events were
    found already stored (an idempotent retry), so nothing new was written. ``lsn`` is the
    WAL position of the append's commit where a store reads from replicas (PostgreSQL with
    ``replicas=``), else None: pass the result as ``fresh=`` to a read that must see it.
    """

    stream_id: str
    version: int
    position: int
    already_appended: bool = False
    lsn: int | None = None


class EncodedEvent(NamedTuple):
    """An event ready to be written: the columns of one row."""

    event_id: uuid.UUID
    type: str
    schema_version: int
    encoding: int
    data: bytes
    metadata: bytes


class PreparedAppend(NamedTuple):
    """A validated, encoded stream append, as a backend receives it.

    ``aggregate_type``, when given, is recorded as the stream's if the append creates it;
    a stream that has another one refuses the append (``check_aggregate_type``).
    """

    stream_id: str
    expected_version: int
    events: list[EncodedEvent]
    aggregate_type: str | None = None


def is_event_sequence(events: object) -> bool:
    """Whether ``events`` can be an append's events: a sequence that is not a str or bytes
    (a list or a tuple is answered without the slower ``Sequence`` check)."""
    kind = type(events)
    if kind is list or kind is tuple:
        return True
    return not isinstance(events, str | bytes) and isinstance(events, Sequence)


def check_expected(stream_id: str, expected: int, actual: int) -> None:
    """Raise ``ConcurrencyError`` unless a stream at ``actual`` satisfies ``expected``."""
    if expected == ExpectedVersion.ANY:
        return
    if expected == ExpectedVersion.STREAM_EXISTS:
        if actual > 0:
            return
    elif expected == actual:
        return
    stated = ExpectedVersion(expected) if expected <= 0 else expected
    raise ConcurrencyError(stream_id, stated, actual)


def check_aggregate_type(stream_id: str, recorded: str | None, given: str | None) -> None:
    """Raise ``WrongAggregateType`` when a stream recorded as one aggregate type is used as
    another; a stream without one (plain appends) and a caller without one always pass."""
    if recorded is not None and given is not None and recorded != given:
        raise WrongAggregateType(stream_id, recorded, given)


def duplicate_event_id(
    appends: Sequence[PreparedAppend], stored: Collection[uuid.UUID]
) -> DuplicateEventId:
    """The error for an append that repeats an event id, naming the id and its stream.

    ``stored`` holds those of the appended ids the store already has.
    """
    seen: set[uuid.UUID] = set()
    for append in appends:
        for event in append.events:
            if event.event_id in stored or event.event_id in seen:
                where = "is already stored" if event.event_id in stored else "appears twice"
                return DuplicateEventId(
                    f"event id {event.event_id} appended to stream {append.stream_id!r} "
                    f"{where}; nothing was written"
                )
            seen.add(event.event_id)
    return DuplicateEventId("an appended event id is already stored; nothing was written")
