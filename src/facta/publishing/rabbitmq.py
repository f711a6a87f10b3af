"""RabbitMQ: a relay publishes to a durable topic exchange, with publisher confirms.

Each event is one persistent message whose routing key is its subject
(``<prefix>.<type>.<stream>``), ``message_id`` its event id, headers the facta headers and body
the stored bytes. Consumers bind queues with topic patterns (``shop.OrderPaid.#``) and
de-duplicate by ``message_id``: delivery is at least once. An inbox reads a queue bound to the
exchange through :class:`RabbitMQSource` and drops the repeats. A routing key longer than AMQP's 255
bytes is shortened the same way every time (:func:`routing_key_for`), so a stream keeps one key.

Needs the ``rabbitmq`` extra (aio-pika).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    PublishResultType,
)

from facta.codec import ZLIB
from facta.errors import ConfigurationError
from facta.publishing.broker import Broker, BrokerUnavailable, Message
from facta.publishing.source import Delivery, Source

__all__ = ["MAX_ROUTING_KEY_BYTES", "RabbitMQBroker", "RabbitMQSource", "routing_key_for"]

log = logging.getLogger("facta.publishing")

MAX_ROUTING_KEY_BYTES = 255  # AMQP's shortstr
_DIGEST_CHARACTERS = 16  # 64 bits of SHA-256: no two long subjects share a shortened key


def routing_key_for(subject: str) -> str:
    """The subject itself when it fits in 255 bytes (UTF-8); otherwise its first bytes (cut at
    a character boundary) followed by ``~`` and 16 hex digits of the subject's SHA-256.

    The same subject always gets the same key (one stream, one key) and the cut keeps the
    leading words, so ``<prefix>.<type>.#`` bindings still match; the full stream id stays in
    the ``Facta-Stream`` header.
    """
    encoded = subject.encode()
    if len(encoded) <= MAX_ROUTING_KEY_BYTES:
        return subject
    digest = hashlib.sha256(encoded).hexdigest()[:_DIGEST_CHARACTERS]
    head = encoded[: MAX_ROUTING_KEY_BYTES - _DIGEST_CHARACTERS - 1]
    return f"{head.decode(errors='ignore')}~{digest}"  # 'ignore' drops a character cut in two


class RabbitMQBroker(Broker):
    """Publishes to the topic exchange ``exchange`` (``prefix`` by default) at ``url``
    (``amqp://`` or ``amqps://``); use it as an async context manager or give it to a relay.

    Messages are published ``mandatory`` by default: one that no queue takes is returned and
    counts as not acknowledged, so the relay waits (backing off) until a queue is bound for
    it; with ``mandatory=False`` RabbitMQ drops such messages. ``timeout`` bounds the
    connection and each wait for confirms, in seconds.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "facta",
        *,
        exchange: str | None = None,
        mandatory: bool = True,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigurationError(
                f"a RabbitMQ URL starts with amqp:// or amqps://, got {_address(url)!r}"
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url, self.address = url, _address(url)
        self.exchange_name = prefix if exchange is None else exchange
        self.mandatory, self.timeout = mandatory, timeout
        self._password = parts.password or ""
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def open(self) -> None:
        """Connect, open a channel with publisher confirms and declare the exchange."""
        if self._connected():
            return
        await self.close()  # what is left of a lost connection
        try:
            connection = await aio_pika.connect(
                self.url,
                timeout=self.timeout,
                client_properties={"connection_name": "facta relay"},
            )
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as e:
            raise BrokerUnavailable(
                f"cannot connect to RabbitMQ at {self.address}: {self._describe(e)}"
            ) from e
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        except (
            aiormq.exceptions.ChannelPreconditionFailed,
            aiormq.exceptions.ChannelAccessRefused,
        ) as e:
            await _quietly_close(connection)
            raise ConfigurationError(
                f"RabbitMQ at {self.address} refused the durable topic exchange "
                f"{self.exchange_name!r} ({self._describe(e)}): delete or rename the "
                f"existing exchange, or grant the user access to it"
            ) from e
        except BaseException as e:
            await _quietly_close(connection)
            if isinstance(e, OSError | TimeoutError | aiormq.exceptions.AMQPError):
                raise BrokerUnavailable(
                    f"RabbitMQ at {self.address} failed while opening: {self._describe(e)}"
                ) from e
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        """Publish every message with its confirm in flight; how many from the first on were
        confirmed. A nack, a returned message or a missing confirm ends that prefix."""
        exchange = self._exchange
        if exchange is None or not self._connected():
            raise BrokerUnavailable(f"not connected to RabbitMQ at {self.address}")
        if not messages:
            return 0
        outgoing = [(_amqp_message(m), routing_key_for(m.subject)) for m in messages]
        # Tasks start in order and reach the channel's lock without suspending first, so the
        # messages go out in the order given; only the confirms are awaited together.
        sending = [
            asyncio.ensure_future(exchange.publish(amqp, key, mandatory=self.mandatory))
            for amqp, key in outgoing
        ]
        for task in sending:
            task.add_done_callback(_retrieve)
        try:
            _, late = await asyncio.wait(sending, timeout=self.timeout)
        finally:
            for task in sending:
                task.cancel()  # no-op for the finished ones
        outcomes = await asyncio.gather(*sending, return_exceptions=True)
        confirmed = 0
        for message, outcome, task in zip(messages, outcomes, sending, strict=True):
            if isinstance(outcome, aiormq.spec.Basic.Ack):
                confirmed += 1
                continue
            reason = self._failure(message, outcome, late=task in late)
            if confirmed == 0:
                raise BrokerUnavailable(reason) from (
                    outcome if isinstance(outcome, BaseException) else None
                )
            log.warning("%s; %d of %d messages were confirmed", reason, confirmed, len(messages))
            break
        return confirmed

    async def close(self) -> None:
        """Close the connection (and its channel); safe to call twice."""
        connection, self._connection, self._channel, self._exchange = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None:
            await _quietly_close(connection)

    # -- helpers ---------------------------------------------------------------------------

    def _connected(self) -> bool:
        connection, channel = self._connection, self._channel
        return (
            connection is not None
            and not connection.is_closed
            and channel is not None
            and not channel.is_closed
        )

    def _failure(self, message: Message, outcome: object, *, late: bool) -> str:
        """Why ``message`` was not confirmed, in one sentence naming the event and server."""
        event = f"event {message.event_id} ({message.headers.get('Facta-Stream', '?')})"
        if late:
            return f"RabbitMQ at {self.address} did not confirm {event} within {self.timeout:g} s"
        if isinstance(outcome, aiormq.exceptions.PublishError):
            return (
                f"RabbitMQ at {self.address} returned {event}: no queue bound to exchange "
                f"{self.exchange_name!r} takes routing key "
                f"{routing_key_for(message.subject)!r}; bind one, or publish with "
                f"mandatory=False to let RabbitMQ drop such messages"
            )
        if isinstance(outcome, aiormq.exceptions.DeliveryError):
            return f"RabbitMQ at {self.address} refused {event} ({self._describe(outcome)})"
        if isinstance(outcome, BaseException):
            return f"publishing {event} to RabbitMQ at {self.address} failed: {self._describe(outcome)}"
        return f"RabbitMQ at {self.address} answered {outcome!r} for {event}"

    def _describe(self, error: BaseException) -> str:
        """The error's text, never with the password in it."""
        text = str(error) or type(error).__name__
        return text.replace(self._password, "***") if self._password else text


def _amqp_message(message: Message) -> aio_pika.Message:
    headers = message.headers
    recorded_at = headers.get("Facta-Recorded-At")
    return aio_pika.Message(
        message.data,
        headers=dict(headers),
        content_type="application/json",
        content_encoding="deflate" if int(headers.get("Facta-Encoding", "0")) & ZLIB else None,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.event_id,
        correlation_id=headers.get("Facta-Correlation-Id"),
        timestamp=None if recorded_at is None else datetime.fromisoformat(recorded_at),
        type=headers.get("Facta-Type"),
    )


def _address(url: str) -> str:
    """``scheme://user@host:port/vhost``: where the server is, without the password."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = user.partition(":")[0]
    if parts.scheme in ("amqp", "amqps") and host and not host.rpartition(":")[2].isdigit():
        host = f"{host}:{5671 if parts.scheme == 'amqps' else 5672}"
    return f"{parts.scheme}://{user + '@' if user else ''}{host}{parts.path or '/'}"


def _retrieve(task: asyncio.Task[PublishResultType | None]) -> None:
    """Mark a publish's failure as seen (even if ``publish`` itself was cancelled)."""
    if not task.cancelled():
        task.exception()


async def _quietly_close(connection: AbstractConnection) -> None:
    try:
        await connection.close()
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError, RuntimeError) as e:
        log.debug("closing the RabbitMQ connection failed: %s", e)


class RabbitMQSource(Source):
    """Reads a durable queue bound to the topic exchange a :class:`RabbitMQBroker` of the same
    ``prefix`` (or ``exchange``) publishes to, at ``url``, for an inbox.

    The queue is named ``<exchange>.inbox.<inbox name>`` unless ``queue`` is given; it is
    declared (durable) and bound with each of ``bindings`` (``#``: every event; topic
    patterns like ``shop.OrderPaid.#`` take some types only: give the inbox
    ``gaps=Gaps.ACCEPT`` then, as their streams' other versions never come). Messages come
    with manual acknowledgement, ``prefetch`` at most unacknowledged at a time (more than the
    inbox's batch size); those not acknowledged when the connection ends go back to the
    queue, in their place. A refused message is handed back (``nack``, requeued) once its
    delay passed. ``timeout`` bounds connecting, in seconds.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "facta",
        *,
        exchange: str | None = None,
        queue: str | None = None,
        bindings: Sequence[str] = ("#",),
        prefetch: int = 1000,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigurationError(
                f"a RabbitMQ URL starts with amqp:// or amqps://, got {_address(url)!r}"
            )
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
        if not bindings:
            raise ValueError("bindings must name at least one routing key pattern ('#': all)")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url, self.address = url, _address(url)
        self.exchange_name = prefix if exchange is None else exchange
        self.queue, self.bindings = queue, tuple(bindings)
        self.prefetch, self.timeout = prefetch, timeout
        self.queue_name = queue or ""
        self._password = parts.password or ""
        self._connection: AbstractConnection | None = None
        self._arrived: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._refusing: set[asyncio.Task[None]] = set()

    async def open(self, inbox: str) -> None:
        """Connect, declare the exchange and the queue, bind it, and start consuming."""
        await self.close()
        self.queue_name = self.queue or f"{self.exchange_name}.inbox.{inbox}"
        try:
            connection = await aio_pika.connect(
                self.url,
                timeout=self.timeout,
                client_properties={"connection_name": f"facta inbox {inbox}"},
            )
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as e:
            raise BrokerUnavailable(
                f"cannot connect to RabbitMQ at {self.address}: {self._describe(e)}"
            ) from e
        arrived: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue_name, durable=True)
            for binding in self.bindings:
                await queue.bind(exchange, binding)
            channel.close_callbacks.add(lambda *_: arrived.put_nowait(None))
            await queue.consume(arrived.put, no_ack=False)
        except (
            aiormq.exceptions.ChannelPreconditionFailed,
            aiormq.exceptions.ChannelAccessRefused,
        ) as e:
            await _quietly_close(connection)
            raise ConfigurationError(
                f"RabbitMQ at {self.address} refused the durable topic exchange "
                f"{self.exchange_name!r} or the durable queue {self.queue_name!r} "
                f"({self._describe(e)}): delete or rename what exists under that name, or "
                "grant the user access to it"
            ) from e
        except BaseException as e:
            await _quietly_close(connection)
            if isinstance(e, OSError | TimeoutError | aiormq.exceptions.AMQPError):
                raise BrokerUnavailable(
                    f"RabbitMQ at {self.address} failed while opening queue "
                    f"{self.queue_name!r}: {self._describe(e)}"
                ) from e
            raise
        self._connection, self._arrived = connection, arrived

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        """What arrived, up to ``limit`` messages, waiting up to ``wait`` s for the first."""
        if self._connection is None:
            raise BrokerUnavailable(f"not connected to RabbitMQ at {self.address}")
        taken: list[AbstractIncomingMessage | None] = []
        if self._arrived.empty() and wait > 0:
            with contextlib.suppress(TimeoutError):
                taken.append(await asyncio.wait_for(self._arrived.get(), wait))
        while len(taken) < limit and not self._arrived.empty():
            taken.append(self._arrived.get_nowait())
        if None in taken:  # the channel closed: what was received goes back to the queue
            raise BrokerUnavailable(
                f"the connection to RabbitMQ at {self.address} (queue {self.queue_name!r}) was lost"
            )
        return [_delivery(m) for m in taken if m is not None]

    async def acknowledge(self, deliveries: Sequence[Delivery]) -> None:
        """``basic.ack`` each message."""
        try:
            for delivery in deliveries:
                await _incoming(delivery).ack()
        except (OSError, aiormq.exceptions.AMQPError, RuntimeError) as e:
            raise BrokerUnavailable(
                f"cannot acknowledge messages of queue {self.queue_name!r} at RabbitMQ at "
                f"{self.address}: {self._describe(e)}"
            ) from e

    async def refuse(self, deliveries: Sequence[Delivery], delay: float) -> None:
        """Hand them back to the queue (``basic.nack``, requeued) after ``delay`` seconds."""
        messages = [_incoming(delivery) for delivery in deliveries]
        if not messages:
            return
        task = asyncio.ensure_future(self._hand_back(messages, delay))
        self._refusing.add(task)
        task.add_done_callback(self._refusing.discard)

    async def _hand_back(self, messages: list[AbstractIncomingMessage], delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            for message in messages:
                await message.nack(requeue=True)
        except (OSError, aiormq.exceptions.AMQPError, RuntimeError) as e:
            # the connection ended: RabbitMQ puts them back in the queue itself
            log.debug("handing messages back to RabbitMQ at %s failed: %s", self.address, e)

    async def close(self) -> None:
        """Close the connection; unacknowledged messages go back to the queue."""
        for task in list(self._refusing):
            task.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            await _quietly_close(connection)
        self._arrived = asyncio.Queue()  # their delivery tags died with the channel

    def _describe(self, error: BaseException) -> str:
        """The error's text, never with the password in it."""
        text = str(error) or type(error).__name__
        return text.replace(self._password, "***") if self._password else text


def _delivery(message: AbstractIncomingMessage) -> Delivery:
    headers = {
        name: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        for name, value in (message.headers or {}).items()
    }
    return Delivery(message.routing_key or "", headers, message.body, message)


def _incoming(delivery: Delivery) -> AbstractIncomingMessage:
    if not isinstance(delivery.receipt, aio_pika.abc.AbstractIncomingMessage):
        raise TypeError(f"not a delivery of a RabbitMQSource: {delivery.receipt!r}")
    return delivery.receipt
