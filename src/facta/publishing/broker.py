"""What a relay publishes (:class:`Message`) and where (:class:`Broker`): pure values and the
interface a broker module implements.

A message carries the event's stored bytes unchanged (no re-encoding: ``Facta-Encoding`` says
whether they are zlib-compressed JSON, bit 1, and whether personal fields in it are sealed,
bit 2: those stay sealed on the way) and headers naming the event, its place and its
metadata's correlation and causation ids.

>>> from datetime import UTC, datetime
>>> import uuid
>>> from facta.records import StoredEvent
>>> row = StoredEvent("order-1", 2, 7, 0, uuid.UUID(int=1), "OrderPaid", 1, 0, b"{}", b"{}",
...                   datetime(2026, 1, 1, tzinfo=UTC))
>>> message = message_for(row, None, None, prefix="shop")
>>> message.subject, message.headers["Facta-Version"], message.headers["Facta-Checkpoint"]
('shop.OrderPaid.order-1', '2', '0:7')
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import NamedTuple

from facta.errors import FactaError
from facta.events import Checkpoint
from facta.records import StoredEvent

__all__ = ["Broker", "BrokerUnavailable", "Message", "SubjectRule", "message_for", "subject_for"]


class Message(NamedTuple):
    """One event as a broker receives it."""

    subject: str  # where it goes: a NATS subject, a routing key, a Redis stream key's suffix
    event_id: str  # the broker's message id, for its de-duplication
    data: bytes  # the event's data exactly as stored
    headers: dict[str, str]
    checkpoint: Checkpoint  # the event's place in the global log


# (stored event) -> subject; the default is ``<prefix>.<type>.<stream>`` (subject_for).
SubjectRule = Callable[[StoredEvent], str]


class BrokerUnavailable(FactaError):
    """The broker cannot be reached or refused to take messages; the relay backs off."""


def subject_for(event: StoredEvent, prefix: str) -> str:
    """``<prefix>.<type>.<stream>``: per-stream order is kept by the broker per subject."""
    return f"{prefix}.{event.type}.{event.stream_id}"


def message_for(
    event: StoredEvent,
    correlation_id: str | None,
    causation_id: str | None,
    *,
    prefix: str = "facta",
    subject: SubjectRule | None = None,
) -> Message:
    """The message for a stored event (its metadata's ids given, as the relay decodes them)."""
    transaction_id, position = event.checkpoint
    headers = {
        "Facta-Event-Id": str(event.event_id),
        "Facta-Type": event.type,
        "Facta-Schema-Version": str(event.schema_version),
        "Facta-Encoding": str(event.encoding),
        "Facta-Stream": event.stream_id,
        "Facta-Version": str(event.version),
        "Facta-Checkpoint": f"{transaction_id}:{position}",
        "Facta-Recorded-At": event.recorded_at.isoformat(),
    }
    if correlation_id is not None:
        headers["Facta-Correlation-Id"] = correlation_id
    if causation_id is not None:
        headers["Facta-Causation-Id"] = causation_id
    return Message(
        subject_for(event, prefix) if subject is None else subject(event),
        str(event.event_id),
        event.data,
        headers,
        event.checkpoint,
    )


class Broker(abc.ABC):
    """A message system a relay publishes to; one module per system (NATS, RabbitMQ, Redis).

    ``keeps_checkpoints`` is True for a broker that stores the relay's checkpoint itself,
    atomically with the messages (Redis: the ``XADD`` s and the checkpoint in one script): the
    relay then resumes from :meth:`checkpoint` and the broker gets each event exactly once.
    Brokers are async context managers (``open`` / ``close``).
    """

    keeps_checkpoints: bool = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (and create what the broker needs, e.g. a JetStream stream or an exchange).

        Raises ``BrokerUnavailable`` when the broker cannot be reached.
        """

    @abc.abstractmethod
    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        """Send every message, many in flight at once, and wait for the acknowledgements.

        Returns how many messages from the first on were acknowledged (all of them when all
        went well): the relay moves its checkpoint past exactly those and sends the rest again
        later. Raises ``BrokerUnavailable`` when not even the first one was (the connection is
        lost, the broker is down); the relay then backs off and calls :meth:`open` again.
        A broker that ``keeps_checkpoints`` stores ``messages[n - 1].checkpoint`` as
        ``relay``'s with the first ``n`` messages it returns.
        """

    async def checkpoint(self, relay: str) -> Checkpoint | None:
        """The relay's checkpoint as the broker keeps it (``keeps_checkpoints``); None if it
        has none yet. Brokers that keep none return None."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect; safe to call twice, and after a failed ``open``."""

    async def __aenter__(self) -> Broker:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
