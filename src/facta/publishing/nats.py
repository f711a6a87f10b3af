"""NATS JetStream as a relay's broker: a stream that keeps every event, de-duplicated by event id.

Each message is published with ``Nats-Msg-Id`` set to the event's id, so when a relay dies
between the broker's acknowledgement and its own checkpoint, the events it sends again are
dropped by the stream's duplicate window (2 minutes unless ``duplicate_window`` says
otherwise): a relay that restarts within the window delivers each event exactly once. An inbox
reads the stream through a durable pull consumer (:class:`JetStreamSource`).

Subjects are ``<prefix>.<type>.<stream>`` (``facta.publishing.subject_for``), made valid for
NATS by :func:`nats_subject`: within each ``.``-separated token, ``%``, ``*``, ``>``,
whitespace and control characters become ``%XX`` (their UTF-8 bytes, upper-case hex), and an
empty token (``a..b``, a stream id ending in ``.``) becomes a lone ``%``. The rule never
changes a subject that is already plain, and ``urllib.parse.unquote`` undoes it token by
token; the exact type and stream id are in the message's headers anyway.

>>> nats_subject("facta.OrderPaid.order 7*")
'facta.OrderPaid.order%207%2A'
>>> nats_subject("facta.OrderPaid..x")
'facta.OrderPaid.%.x'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Literal

from facta.errors import ConfigurationError
from facta.publishing.broker import Broker, BrokerUnavailable, Message
from facta.publishing.source import Delivery, Source

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DeliverPolicy,
        PubAck,
        RetentionPolicy,
        StorageType,
        StreamConfig,
        StreamInfo,
    )
except ModuleNotFoundError as e:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        f"facta.publishing.nats needs nats-py: pip install 'facta[nats]' ({e})", name=e.name
    ) from e

__all__ = ["JetStreamBroker", "JetStreamSource", "nats_subject"]

log = logging.getLogger("facta.publishing")

Retention = Literal["limits", "interest", "workqueue"]

# Characters a NATS subject token cannot hold as they are: the escape, the wildcards, and
# anything the protocol reads as a separator (whitespace) or cannot carry (control characters).
_SPECIAL = frozenset("%*>")
# How many publishes may await their acknowledgement at once (a relay's batch, 500 by default,
# stays far below it).
_MAX_IN_FLIGHT = 65_536


def _escape_token(token: str) -> str:
    if not token:
        return "%"
    if not any(c in _SPECIAL or c.isspace() or not c.isprintable() for c in token):
        return token
    return "".join(
        "".join(f"%{byte:02X}" for byte in c.encode())
        if c in _SPECIAL or c.isspace() or not c.isprintable()
        else c
        for c in token
    )


# A subject with nothing to escape: non-empty tokens of printable characters, none special.
_PLAIN_SUBJECT = re.compile(r"[^%*>\s.]+(?:\.[^%*>\s.]+)*")


def nats_subject(subject: str) -> str:
    """``subject`` as a valid NATS subject, escaped token by token (see the module's rule)."""
    if subject.isprintable() and _PLAIN_SUBJECT.fullmatch(subject):
        return subject  # the common case, checked in C rather than character by character
    return ".".join(_escape_token(token) for token in subject.split("."))


def _without_credentials(url: str) -> str:
    """``nats://user:secret@host:4222`` as ``nats://host:4222``."""
    scheme, separator, rest = url.rpartition("://")
    return f"{scheme}{separator}{rest.rpartition('@')[2]}"


def _header(value: str) -> str:
    """A header value the NATS protocol can carry: a line break would end the header."""
    return value.replace("\r", "%0D").replace("\n", "%0A")


def _covers(pattern: str, subject: str) -> bool:
    """Whether stream subject ``pattern`` takes every subject ``subject`` (itself possibly a
    pattern) matches: ``*`` is one token, ``>`` the rest."""
    have, want = pattern.split("."), subject.split(".")
    for i, token in enumerate(have):
        if token == ">":
            return len(want) > i
        if i >= len(want) or (token != want[i] and not (token == "*" and want[i] != ">")):
            return False
    return len(have) == len(want)


class JetStreamBroker(Broker):
    """Publishes to JetStream stream ``stream`` on the NATS server(s) ``servers`` (a URL, a
    comma-separated list of them, or a sequence).

    The stream takes ``subjects`` (default ``<prefix>.>``, the relay's prefix). With
    ``create_stream`` it is created if missing, with ``retention`` (default ``limits``),
    ``max_age`` (seconds; None keeps events forever), ``duplicate_window`` (seconds) and
    ``replicas``; an existing stream is used as it is, if it takes those subjects. Without
    ``create_stream`` the stream must exist. ``ack_timeout`` bounds the wait for one batch's
    acknowledgements; ``connect_timeout`` one connection attempt.

    The broker does not reconnect by itself: when the connection breaks, the relay backs
    off and opens a new one, so nothing buffered in a broken connection is sent behind the
    events the relay sends again (which would put a stream's events out of order).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "FACTA",
        prefix: str = "facta",
        subjects: Sequence[str] | None = None,
        create_stream: bool = True,
        retention: Retention = "limits",
        max_age: float | None = None,
        duplicate_window: float = 120.0,
        replicas: int = 1,
        connect_timeout: float = 2.0,
        ack_timeout: float = 10.0,
    ) -> None:
        if not stream or any(c in stream for c in ".*> \t\r\n/\\"):
            raise ValueError(
                f"{stream!r} is not a JetStream stream name (no '.', '*', '>', spaces)"
            )
        if retention not in ("limits", "interest", "workqueue"):
            raise ValueError(f"retention must be limits, interest or workqueue, not {retention!r}")
        if not duplicate_window > 0 or not connect_timeout > 0 or not ack_timeout > 0:
            raise ValueError("duplicate_window, connect_timeout and ack_timeout must be > 0 s")
        if not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be an int >= 1, got {replicas!r}")
        self.servers = servers.split(",") if isinstance(servers, str) else list(servers)
        self.stream = stream
        self.subjects = list(subjects) if subjects else [f"{nats_subject(prefix)}.>"]
        self.create_stream = create_stream
        self.retention, self.max_age, self.replicas = retention, max_age, replicas
        self.duplicate_window = duplicate_window
        self.connect_timeout, self.ack_timeout = connect_timeout, ack_timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._broken = asyncio.Event()  # set when the connection breaks

    @property
    def where(self) -> str:
        """The server(s), as messages name them: without user names, passwords or tokens."""
        return ", ".join(_without_credentials(server) for server in self.servers)

    async def open(self) -> None:
        """Connect and make sure the stream exists and takes the relay's subjects."""
        if self._client is not None:
            return
        errors: list[Exception] = []

        broken = asyncio.Event()

        async def error_cb(error: Exception) -> None:
            errors.append(error)
            log.debug("NATS at %s: %s", self.where, error)

        async def disconnected_cb() -> None:
            broken.set()

        try:
            client = await nats.connect(
                self.servers,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                allow_reconnect=False,  # the relay reconnects, after its back-off
                max_reconnect_attempts=1,  # how nats-py tries each server once (and once more)
                reconnect_time_wait=0,
                connect_timeout=self.connect_timeout,
                drain_timeout=int(max(1, self.ack_timeout)),
            )
        except (OSError, TimeoutError, nats.errors.Error) as e:
            cause = errors[-1] if errors else e
            raise BrokerUnavailable(
                f"cannot connect to NATS at {self.where}: {cause or type(cause).__name__}"
            ) from e
        try:
            # Room for every publish of a batch in flight: a publish never waits for a slot
            # (waiting with a timeout costs a task per message); _wait bounds the acks.
            js = client.jetstream(
                timeout=self.ack_timeout, publish_async_max_pending=_MAX_IN_FLIGHT
            )
            await self._stream(js)
        except BaseException:
            with contextlib.suppress(Exception):
                await client.close()
            raise
        self._client, self._js, self._broken = client, js, broken

    async def _stream(self, js: JetStreamContext) -> None:
        """Find the stream, or create it; check that it takes our subjects."""
        try:
            info: StreamInfo | None = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            info = None
        except (OSError, TimeoutError, nats.errors.Error) as e:
            raise BrokerUnavailable(
                f"NATS at {self.where} did not answer about JetStream stream {self.stream!r} "
                "(is JetStream enabled, nats-server -js? in a cluster, is the stream's leader "
                f"being elected?): {e or type(e).__name__}"
            ) from e
        if info is None:
            if not self.create_stream:
                raise ConfigurationError(
                    f"NATS at {self.where} has no JetStream stream {self.stream!r}: create it "
                    f"(taking {', '.join(self.subjects)}) or let the broker create it"
                )
            config = StreamConfig(
                name=self.stream,
                subjects=self.subjects,
                retention=RetentionPolicy(self.retention),
                max_age=self.max_age,
                duplicate_window=self.duplicate_window,
                num_replicas=self.replicas,
                storage=StorageType.FILE,
            )
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as e:  # e.g. subjects overlap another stream
                raise ConfigurationError(
                    f"NATS at {self.where} refused to create JetStream stream {self.stream!r} "
                    f"for {', '.join(self.subjects)}: {e.description}"
                ) from e
            except (OSError, TimeoutError, nats.errors.Error) as e:
                raise BrokerUnavailable(
                    f"NATS at {self.where} did not create JetStream stream {self.stream!r}: "
                    f"{e or type(e).__name__}"
                ) from e
            return
        taken = info.config.subjects or []
        missing = [s for s in self.subjects if not any(_covers(t, s) for t in taken)]
        if missing:
            raise ConfigurationError(
                f"JetStream stream {self.stream!r} at {self.where} takes {', '.join(taken)}, "
                f"not {', '.join(missing)}: give the relay a prefix the stream takes, or "
                "another stream"
            )
        if not info.config.duplicate_window:
            log.warning(
                "JetStream stream %r has no duplicate window: a relay that restarts "
                "sends its last batch twice",
                self.stream,
            )

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        """Send every message with its event id as ``Nats-Msg-Id``; the acknowledged prefix."""
        client, js = self._client, self._js
        if client is None or js is None or not client.is_connected:
            raise BrokerUnavailable(f"not connected to NATS at {self.where}")
        acks: list[asyncio.Future[PubAck]] = []
        failure: BaseException | None = None
        for message in messages:
            headers = {name: _header(value) for name, value in message.headers.items()}
            headers["Nats-Msg-Id"] = message.event_id
            try:
                ack = await js.publish_async(
                    nats_subject(message.subject),
                    message.data,
                    stream=self.stream,
                    headers=headers,
                )
            except nats.errors.MaxPayloadError as e:
                if not acks:
                    raise ConfigurationError(
                        f"event {message.event_id} ({message.headers.get('Facta-Type')} "
                        f"{message.headers.get('Facta-Stream')!r} "
                        f"v{message.headers.get('Facta-Version')}) is {len(message.data)} "
                        f"bytes, more than NATS at {self.where} takes in one message "
                        "(its max_payload): raise max_payload, or leave the type out of the "
                        "relay's types"
                    ) from e
                failure = e
                break
            except (OSError, TimeoutError, nats.errors.Error) as e:
                failure = e
                break
            acks.append(ack)
        unanswered = await self._wait(acks)
        acknowledged = 0
        for future in acks:
            error = unanswered if future.cancelled() else future.exception()
            if error is not None:
                failure = error
                break
            acknowledged += 1
        for future in acks[acknowledged:]:
            if not future.cancelled():
                future.exception()  # retrieve every error: none is reported as unread
        if acknowledged == 0:
            raise BrokerUnavailable(self._why(messages[0], failure)) from failure
        return acknowledged

    def _why(self, message: Message, failure: BaseException | None) -> str:
        """Why NATS took not even the first message, for the relay's log."""
        subject = nats_subject(message.subject)
        if isinstance(failure, nats.js.errors.NoStreamResponseError):
            reason = (
                f"no JetStream stream takes subject {subject!r} (stream {self.stream!r} takes "
                f"{', '.join(self.subjects)}; in a cluster, it may have no leader just now)"
            )
        elif failure is None:
            reason = "the message was not sent"
        else:
            reason = str(failure) or type(failure).__name__
        return f"NATS at {self.where} did not take event {message.event_id} on {subject}: {reason}"

    async def _wait(self, acks: list[asyncio.Future[PubAck]]) -> Exception:
        """Wait for every acknowledgement, ``ack_timeout`` at most, and less if the connection
        breaks (acknowledgements that came before are kept); cancel those still missing and
        return why they are."""
        if not acks:
            return TimeoutError("nothing was sent")
        everything = asyncio.ensure_future(asyncio.wait(acks))
        broken = asyncio.ensure_future(self._broken.wait())
        try:
            await asyncio.wait(
                {everything, broken}, timeout=self.ack_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            everything.cancel()  # cancelling what is done does nothing
            broken.cancel()
            for future in acks:
                future.cancel()
            await asyncio.wait({everything, broken})
        if self._broken.is_set():
            return ConnectionError("the connection broke before NATS acknowledged it")
        return TimeoutError(f"no acknowledgement within {self.ack_timeout:g} s")

    async def close(self) -> None:
        """Drain the connection (or close it if it broke); safe to call twice."""
        client, self._client, self._js = self._client, None, None
        if client is None or client.is_closed:
            return
        try:
            if client.is_connected:
                await client.drain()
        except (OSError, TimeoutError, nats.errors.Error) as e:
            log.debug("NATS at %s: draining failed (%s)", self.where, e)
        finally:
            with contextlib.suppress(OSError, TimeoutError, nats.errors.Error):
                await client.close()


class JetStreamSource(Source):
    """Reads JetStream stream ``stream`` on the NATS server(s) ``servers`` through a durable
    pull consumer with explicit acknowledgement, for an inbox.

    The consumer is named after the inbox (``.`` becomes ``-``) unless ``consumer`` is given,
    and made when missing: it delivers every message the stream holds (``deliver="all"``) or
    only those stored after it was made (``"new"``: give the inbox ``join_midway`` then), of
    ``subject`` only if given (a subject filter such as ``shop.>``). A message not
    acknowledged within ``ack_wait`` seconds (the inbox died, or took that long) is delivered
    again; so is a refused one, after its delay (``nak``). ``max_ack_pending`` bounds the
    messages delivered and not yet acknowledged. An existing consumer is used as it is.

    Like the broker, the connection does not reconnect by itself: the inbox backs off and
    opens a new one.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "FACTA",
        consumer: str | None = None,
        subject: str | None = None,
        deliver: Literal["all", "new"] = "all",
        ack_wait: float = 30.0,
        max_ack_pending: int = 10_000,
        connect_timeout: float = 2.0,
    ) -> None:
        if not stream or any(c in stream for c in ".*> \t\r\n/\\"):
            raise ValueError(
                f"{stream!r} is not a JetStream stream name (no '.', '*', '>', spaces)"
            )
        if consumer is not None and (not consumer or any(c in consumer for c in ".*> \t\r\n/\\")):
            raise ValueError(
                f"{consumer!r} is not a JetStream consumer name (no '.', '*', '>', spaces)"
            )
        if deliver not in ("all", "new"):
            raise ValueError(f"deliver must be 'all' or 'new', not {deliver!r}")
        if not ack_wait > 0 or not connect_timeout > 0:
            raise ValueError("ack_wait and connect_timeout must be > 0 seconds")
        if not isinstance(max_ack_pending, int) or max_ack_pending < 1:
            raise ValueError(f"max_ack_pending must be an int >= 1, got {max_ack_pending!r}")
        self.servers = servers.split(",") if isinstance(servers, str) else list(servers)
        self.stream, self.consumer, self.subject = stream, consumer, subject
        self.deliver, self.ack_wait, self.max_ack_pending = deliver, ack_wait, max_ack_pending
        self.connect_timeout = connect_timeout
        self.consumer_name = consumer or ""
        self._client: Client | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    @property
    def where(self) -> str:
        """The server(s), as messages name them: without user names, passwords or tokens."""
        return ", ".join(_without_credentials(server) for server in self.servers)

    async def open(self, inbox: str) -> None:
        """Connect, find the stream, find or make the consumer, and bind to it."""
        await self.close()
        self.consumer_name = self.consumer or inbox.replace(".", "-")
        try:
            client = await nats.connect(
                self.servers,
                allow_reconnect=False,  # the inbox reconnects, after its back-off
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=self.connect_timeout,
            )
        except (OSError, TimeoutError, nats.errors.Error) as e:
            raise BrokerUnavailable(
                f"cannot connect to NATS at {self.where}: {e or type(e).__name__}"
            ) from e
        try:
            self._subscription = await self._bind(client.jetstream())
        except BaseException:
            with contextlib.suppress(Exception):
                await client.close()
            raise
        self._client = client

    async def _bind(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        name = self.consumer_name
        try:
            try:
                await js.stream_info(self.stream)
            except nats.js.errors.NotFoundError as e:
                raise ConfigurationError(
                    f"NATS at {self.where} has no JetStream stream {self.stream!r}: start the "
                    "relay that publishes to it first (it creates the stream), or create it"
                ) from e
            try:
                await js.consumer_info(self.stream, name)
            except nats.js.errors.NotFoundError:
                config = ConsumerConfig(
                    durable_name=name,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL
                    if self.deliver == "all"
                    else DeliverPolicy.NEW,
                    ack_wait=self.ack_wait,
                    max_ack_pending=self.max_ack_pending,
                    filter_subject=self.subject,
                )
                try:
                    await js.add_consumer(self.stream, config)
                except nats.js.errors.BadRequestError as e:
                    raise ConfigurationError(
                        f"NATS at {self.where} refused to make consumer {name!r} of JetStream "
                        f"stream {self.stream!r}: {e.description}"
                    ) from e
            return await js.pull_subscribe_bind(durable=name, stream=self.stream)
        except (OSError, TimeoutError, nats.errors.Error) as e:
            if isinstance(e, nats.js.errors.NotFoundError | nats.js.errors.BadRequestError):
                raise
            raise BrokerUnavailable(
                f"NATS at {self.where} did not answer about consumer {name!r} of JetStream "
                f"stream {self.stream!r}: {e or type(e).__name__}"
            ) from e

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        """Fetch up to ``limit`` messages, waiting up to ``wait`` s for the first."""
        client, subscription = self._client, self._subscription
        if client is None or subscription is None or not client.is_connected:
            raise BrokerUnavailable(f"not connected to NATS at {self.where}")
        try:
            messages = await subscription.fetch(limit, timeout=max(wait, 0.001))
        except TimeoutError:
            return []
        except (OSError, nats.errors.Error) as e:
            raise BrokerUnavailable(
                f"cannot fetch from consumer {self.consumer_name!r} of JetStream stream "
                f"{self.stream!r} at {self.where}: {e or type(e).__name__}"
            ) from e
        return [Delivery(m.subject, dict(m.headers or {}), m.data, m) for m in messages]

    async def acknowledge(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge each message (``+ACK``)."""
        try:
            for delivery in deliveries:
                await _message(delivery).ack()
        except (OSError, nats.errors.Error) as e:
            raise BrokerUnavailable(
                f"cannot acknowledge messages of JetStream stream {self.stream!r} at "
                f"{self.where}: {e or type(e).__name__}"
            ) from e

    async def refuse(self, deliveries: Sequence[Delivery], delay: float) -> None:
        """``nak`` each message: JetStream delivers it again after ``delay`` seconds."""
        try:
            for delivery in deliveries:
                await _message(delivery).nak(delay=delay or None)
        except (OSError, nats.errors.Error) as e:
            raise BrokerUnavailable(
                f"cannot hand messages back to JetStream stream {self.stream!r} at "
                f"{self.where}: {e or type(e).__name__}"
            ) from e

    async def close(self) -> None:
        """Disconnect; the consumer stays, with what it has not had acknowledged."""
        client, self._client, self._subscription = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(OSError, TimeoutError, nats.errors.Error):
                await client.close()


def _message(delivery: Delivery) -> Msg:
    if not isinstance(delivery.receipt, Msg):
        raise TypeError(f"not a delivery of a JetStreamSource: {delivery.receipt!r}")
    return delivery.receipt
