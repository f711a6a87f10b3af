"""What an inbox reads in a message: the facta headers a relay sets (:func:`read_headers`),
and the event they describe, decoded with the receiving store's codec (:func:`event_of`).

Pure functions, no I/O. The body is the event's data exactly as the sending store stored it,
so the receiving codec decodes it as a read of its own log would: upcasters apply, and a
type whose class is not registered is an ``UnknownEventType``.

>>> received = read_headers({
...     "Facta-Event-Id": "00000000-0000-0000-0000-000000000001", "Facta-Type": "OrderPaid",
...     "Facta-Schema-Version": "1", "Facta-Encoding": "0", "Facta-Stream": "order-1",
...     "Facta-Version": "2", "Facta-Checkpoint": "0:7",
...     "Facta-Recorded-At": "2026-01-01T00:00:00+00:00"})
>>> received.stream_id, received.version, received.position
('order-1', 2, 7)
>>> read_headers({"Facta-Stream": "order-1", "Facta-Version": "two"})
Traceback (most recent call last):
  ...
facta.publishing.received.InvalidMessage: the message is not a facta event: it has no Facta-Event-Id, Facta-Type, Facta-Schema-Version, Facta-Encoding, Facta-Checkpoint, Facta-Recorded-At headers; Facta-Version is 'two', not a version (an integer >= 1, or < 0 for a lifecycle marker)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from facta.codec import Codec
from facta.errors import FactaError
from facta.events import Metadata, RecordedEvent

__all__ = ["InvalidMessage", "Received", "event_of", "read_headers"]


class InvalidMessage(FactaError, ValueError):
    """A message an inbox cannot read: a facta header is missing or malformed."""


class Received(NamedTuple):
    """A message's facta headers, read: which event of which stream it carries, and how."""

    stream_id: str
    version: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    encoding: int
    transaction_id: int  # the event's place in the sending store's log
    position: int
    recorded_at: datetime
    correlation_id: str | None
    causation_id: str | None


def _whole(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < least or not text.strip().isdigit():
            raise ValueError(text)
        return value

    return parse


def _version(text: str) -> int:
    """A stream version (1, 2...), or a lifecycle marker's (-1, -2...: facta.lifecycle)."""
    value = int(text)
    if value == 0 or not text.strip().lstrip("-").isdigit():
        raise ValueError(text)
    return value


def _checkpoint(text: str) -> tuple[int, int]:
    transaction_id, colon, position = text.partition(":")
    if not colon:
        raise ValueError(text)
    return _whole(0)(transaction_id), _whole(0)(position)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def _text(text: str) -> str:
    return text


# header -> (how to read it, what it must be, for messages)
_HEADERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "Facta-Event-Id": (uuid.UUID, "a UUID"),
    "Facta-Type": (_text, "a type name"),
    "Facta-Schema-Version": (_whole(1), "a schema version (an integer >= 1)"),
    "Facta-Encoding": (_whole(0), "an encoding (an integer >= 0)"),
    "Facta-Stream": (_text, "a stream id"),
    "Facta-Version": (_version, "a version (an integer >= 1, or < 0 for a lifecycle marker)"),
    "Facta-Checkpoint": (_checkpoint, "a checkpoint (transaction:position)"),
    "Facta-Recorded-At": (_moment, "an ISO 8601 time with a time zone"),
}


def read_headers(headers: Mapping[str, str]) -> Received:
    """The facta headers of a message; ``InvalidMessage`` naming every one missing or
    malformed."""
    read: dict[str, Any] = {}
    missing: list[str] = []
    malformed: list[str] = []
    for name, (parse, what) in _HEADERS.items():
        text = headers.get(name)
        if not text:
            missing.append(name)
            continue
        try:
            read[name] = parse(text)
        except ValueError:
            malformed.append(f"{name} is {text!r}, not {what}")
    if missing or malformed:
        plural = "s" if len(missing) > 1 else ""
        problems = [f"it has no {', '.join(missing)} header{plural}"] if missing else []
        raise InvalidMessage(f"the message is not a facta event: {'; '.join(problems + malformed)}")
    transaction_id, position = read["Facta-Checkpoint"]
    return Received(
        read["Facta-Stream"],
        read["Facta-Version"],
        read["Facta-Event-Id"],
        read["Facta-Type"],
        read["Facta-Schema-Version"],
        read["Facta-Encoding"],
        transaction_id,
        position,
        read["Facta-Recorded-At"],
        headers.get("Facta-Correlation-Id") or None,
        headers.get("Facta-Causation-Id") or None,
    )


def event_of(received: Received, data: bytes, codec: Codec) -> RecordedEvent:
    """The event a message carries, decoded as the receiving store decodes its own (upcast,
    typed). Raises ``DecodeError``, ``UnknownEventType`` or ``UpcastError`` naming it.

    ``position`` and ``transaction_id`` are the event's place in the sending store's log;
    the metadata holds the correlation and causation ids (a relay sends no other metadata).
    """
    where = f"stream {received.stream_id!r} version {received.version}: "
    return RecordedEvent(
        received.stream_id,
        received.version,
        received.position,
        received.event_id,
        received.type,
        received.schema_version,
        codec.decode(received.type, received.schema_version, received.encoding, data, where),
        Metadata(received.correlation_id, received.causation_id),
        received.recorded_at,
        received.transaction_id,
    )
