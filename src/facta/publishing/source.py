"""Where an inbox's messages come from (:class:`Source`): the receiving side of a broker.

A source is one small class per message system, in the broker's module beside its publisher
(``facta.publishing.nats.JetStreamSource``, ``.rabbitmq.RabbitMQSource``,
``.redis.RedisSource``). It hands the inbox batches of messages in the order the broker
delivers them (:class:`Delivery`), and is told afterwards which ones are done with
(acknowledged: never to come again) and which ones to deliver again later (refused).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Delivery", "Source"]


class Delivery(NamedTuple):
    """One message as a source received it: what a relay sent (subject, facta headers, the
    event's stored bytes), and what the source needs to acknowledge it."""

    subject: str
    headers: dict[str, str]
    data: bytes
    receipt: object  # the source's own: a NATS message, an AMQP message, a Redis entry id


class Source(abc.ABC):
    """A broker subscription an inbox reads; the inbox opens and closes it.

    An inbox acknowledges a message only after the transaction that applied it (or recorded
    it as a duplicate, parked or dead letter) committed: a message in hand when the process
    dies comes again, and the inbox drops it as a duplicate. A source must deliver in the
    broker's order and must deliver again whatever was received but not acknowledged (after
    a reconnection, after a crash).
    """

    @abc.abstractmethod
    async def open(self, inbox: str) -> None:
        """Connect, and find or make the subscription of inbox ``inbox`` (a durable
        consumer, a queue, a consumer group: named after the inbox unless the source was given
        a name). Raises ``BrokerUnavailable`` when the broker cannot be reached."""

    @abc.abstractmethod
    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        """Up to ``limit`` messages, in the order the broker gives them; waits up to ``wait``
        seconds for the first, and returns [] if none came. ``BrokerUnavailable`` when the
        connection is lost."""

    @abc.abstractmethod
    async def acknowledge(self, deliveries: Sequence[Delivery]) -> None:
        """The inbox is done with these: the broker must not deliver them again."""

    @abc.abstractmethod
    async def refuse(self, deliveries: Sequence[Delivery], delay: float) -> None:
        """Deliver these again, not before ``delay`` seconds (as soon as the broker can, after
        that)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect, leaving the subscription (and what it has not acknowledged) at the
        broker; safe to call twice, and after a failed ``open``."""
