"""RabbitMQ (facta.publishing.rabbitmq) against the real server: a relay's events arrive once, in
order, with their ids, headers and stored bytes; a relay killed at random moments loses nothing,
and de-duplication by message id leaves every event once, each stream in order, as does an
inbox (facta.publishing.Inbox) that consumes while the relay is killed.

The server is shared: every test declares an exchange and queues of its own and deletes them.
Not tested here: a RabbitMQ outage, which needs a private server. Run as a script, this file is
the relay those tests kill: ``python test_publishing_rabbitmq.py STORE_URL AMQP_URL EXCHANGE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

import facta
from facta.errors import ConfigurationError
from facta.events import Checkpoint, RecordedEvent
from facta.projections import Projection, handles, statuses_async
from facta.publishing import BrokerUnavailable, Message, Relay, message_for
from facta.publishing.inbox import Inbox as ReceivingInbox
from facta.publishing.rabbitmq import (
    MAX_ROUTING_KEY_BYTES,
    RabbitMQBroker,
    RabbitMQSource,
    routing_key_for,
)
from facta.records import StoredEvent

# The server every test uses; FACTA_TEST_RABBITMQ_URL points them elsewhere.
AMQP_URL = os.environ.get("FACTA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
PATIENCE = 60.0  # seconds to wait for messages, and for a shared PostgreSQL to show events
KILLS = 5
KILLED_EVENTS = 2000


@facta.event("tests.rabbitmq.Shipped")
@dataclass(frozen=True)
class Shipped:
    n: int


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite and PostgreSQL (the memory store lives in one process; a relay is another)."""
    name: str = request.param
    if name == "postgres":
        request.getfixturevalue("pg_schema")
    return name


class Inbox:
    """What a queue bound to the exchange received, in arrival order."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.messages: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()

    async def take(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        self._arrived.set()

    def ids(self) -> set[str]:
        return {str(m.message_id) for m in self.messages}

    async def wait_for(self, ids: Sequence[str], seconds: float = PATIENCE) -> None:
        """Until every one of ``ids`` arrived (at least once)."""
        missing = set(ids) - self.ids()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while missing:
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(missing)} of {len(ids)} messages never arrived")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
            missing -= self.ids()

    async def settle(self) -> list[AbstractIncomingMessage]:
        """What arrived, once nothing more has for a moment (a duplicate would show)."""
        count = -1
        while count != len(self.messages):
            count = len(self.messages)
            await asyncio.sleep(0.3)
        return self.messages


class Rabbit:
    """The test's exchange (declared as the broker declares it) and queues bound to it."""

    def __init__(self, channel: AbstractChannel, exchange: str) -> None:
        self.channel, self.exchange = channel, exchange
        self.names = [exchange]  # exchanges to delete
        self.queues: list[AbstractQueue] = []

    def broker(self, *, mandatory: bool = True) -> RabbitMQBroker:
        return RabbitMQBroker(AMQP_URL, exchange=self.exchange, mandatory=mandatory, timeout=10)

    async def inbox(self, binding: str = "#") -> Inbox:
        queue = await self.channel.declare_queue(
            f"{self.exchange}.{len(self.queues)}", exclusive=True
        )
        self.queues.append(queue)
        await queue.bind(self.exchange, binding)
        inbox = Inbox(queue)
        await queue.consume(inbox.take, no_ack=True)
        return inbox

    def another_name(self) -> str:
        name = f"facta-test-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name


@pytest.fixture
async def rabbit() -> AsyncIterator[Rabbit]:
    """A connection for the test's consumers and an exchange of its own, deleted afterwards."""
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as e:
        pytest.skip(f"RabbitMQ is not running at {RabbitMQBroker(AMQP_URL).address}: {e}")
    async with connection:
        channel = await connection.channel()
        name = f"facta-test-{uuid.uuid4().hex[:12]}"
        await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        rabbit = Rabbit(channel, name)
        try:
            yield rabbit
        finally:
            await channel.close()  # the consumers first: deleting their queues would cancel them
            cleanup = await connection.channel()
            for queue in rabbit.queues:
                await cleanup.queue_delete(queue.name)
            for exchange in rabbit.names:
                await cleanup.exchange_delete(exchange)


async def readable(store: facta.AsyncEventStore) -> None:
    """On PostgreSQL, until readers see every committed event (a shared server's other
    sessions may hold them back a moment)."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:
        assert await wait(PATIENCE), await store.recorder.reader_lag()  # type: ignore[attr-defined]


async def stored(store: facta.AsyncEventStore) -> list[StoredEvent]:
    """The whole global log, in order."""
    await readable(store)
    rows: list[StoredEvent] = []
    while page := await store.recorder.read_all(
        rows[-1].checkpoint if rows else Checkpoint(), None, 1000
    ):
        rows.extend(page)
    return rows


def in_each_stream(messages: Sequence[AbstractIncomingMessage]) -> dict[str, list[int]]:
    """The versions each stream's messages carry, in arrival order."""
    streams: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        streams[str(message.headers["Facta-Stream"])].append(
            int(str(message.headers["Facta-Version"]))
        )
    return streams


async def past_the_checkpoint(store: facta.AsyncEventStore, inbox: Inbox, relay: str) -> int:
    """How many messages arrived that ``relay``'s stored checkpoint is not past (a relay that
    died sending them left them to be sent again)."""
    await asyncio.sleep(0.05)  # for those still on their way
    (status,) = [s for s in await statuses_async(store) if s.name == relay]
    return sum(
        Checkpoint(*map(int, str(m.headers["Facta-Checkpoint"]).split(":"))) > status.checkpoint
        for m in inbox.messages
    )


async def sent(
    store: facta.AsyncEventStore, inbox: Inbox, count: int, appending: asyncio.Task[None]
) -> None:
    """Until ``inbox`` holds ``count`` messages, or every event appended arrived (a relay
    has nothing more to send)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while len(inbox.messages) < count:
        if appending.done() and {str(row.event_id) for row in await stored(store)} <= inbox.ids():
            return
        if loop.time() > deadline:
            raise AssertionError(f"{count - len(inbox.messages)} messages never came")
        await asyncio.sleep(0.005)


def first_of_each(messages: Sequence[AbstractIncomingMessage]) -> list[AbstractIncomingMessage]:
    """A consumer's de-duplication by message id: the first copy of each message."""
    seen: set[str | None] = set()
    kept = []
    for message in messages:
        if message.message_id not in seen:
            seen.add(message.message_id)
            kept.append(message)
    return kept


# -- what arrives ---------------------------------------------------------------------------


async def test_a_relay_publishes_every_event_once_in_log_order_with_its_id_headers_and_bytes(
    async_store: facta.AsyncEventStore, rabbit: Rabbit
) -> None:
    inbox = await rabbit.inbox("#")
    caused = facta.Metadata(correlation_id="order-flow-1", causation_id="command-7")
    await async_store.append(
        "order-1", [Shipped(1), facta.NewEvent(Shipped(2), metadata=caused)], facta.ANY
    )
    await async_store.append("order-2", [Shipped(3)], facta.ANY)
    await readable(async_store)
    async with Relay(async_store, rabbit.broker(), name="shipping", prefix="shop") as relay:
        assert await relay.catch_up() == 3
        assert await relay.catch_up() == 0
    rows = await stored(async_store)
    await inbox.wait_for([str(row.event_id) for row in rows])
    received = await inbox.settle()
    assert len(received) == 3
    for row, delivered in zip(rows, received, strict=True):
        metadata = async_store.codec.decode_metadata(row.metadata)
        expected = message_for(row, metadata.correlation_id, metadata.causation_id, prefix="shop")
        assert (
            delivered.routing_key
            == expected.subject
            == f"shop.tests.rabbitmq.Shipped.{row.stream_id}"
        )
        assert delivered.message_id == str(row.event_id)
        assert delivered.headers == expected.headers
        assert delivered.body == row.data
        assert delivered.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert (delivered.content_type, delivered.content_encoding) == ("application/json", None)
        assert delivered.type == "tests.rabbitmq.Shipped"
        assert delivered.correlation_id == metadata.correlation_id
        assert delivered.timestamp is not None
        assert delivered.timestamp.replace(tzinfo=UTC) == row.recorded_at.replace(microsecond=0)
    assert received[1].headers["Facta-Causation-Id"] == "command-7"


async def test_a_restarted_relay_resends_nothing_that_was_confirmed(
    async_store: facta.AsyncEventStore, rabbit: Rabbit
) -> None:
    inbox = await rabbit.inbox("#")
    await async_store.append("order-1", [Shipped(n) for n in range(5)], facta.ANY)
    await readable(async_store)
    async with Relay(async_store, rabbit.broker(), name="restarted", batch_size=2) as relay:
        assert await relay.catch_up() == 5
    await async_store.append("order-2", [Shipped(n) for n in range(3)], facta.ANY)
    await readable(async_store)
    async with Relay(async_store, rabbit.broker(), name="restarted", batch_size=2) as relay:
        assert await relay.catch_up() == 3
    ids = [str(row.event_id) for row in await stored(async_store)]
    await inbox.wait_for(ids)
    assert [m.message_id for m in await inbox.settle()] == ids


async def test_a_consumer_sees_each_stream_in_order_while_a_relay_runs(
    async_store: facta.AsyncEventStore, rabbit: Rabbit
) -> None:
    everything = await rabbit.inbox("#")
    one_stream = await rabbit.inbox("facta.tests.rabbitmq.Shipped.account-3")
    rng = random.Random(3)
    relay = Relay(async_store, rabbit.broker(), name="live", batch_size=16, poll_interval=0.02)
    async with relay:
        running = asyncio.create_task(relay.run())
        for _ in range(60):  # 300 events, 5 at a time, in 8 streams taking turns at random
            one, other = rng.sample(range(8), 2)
            await async_store.append_many(
                [
                    facta.StreamAppend(f"account-{one}", [Shipped(n) for n in range(2)], facta.ANY),
                    facta.StreamAppend(
                        f"account-{other}", [Shipped(n) for n in range(3)], facta.ANY
                    ),
                ]
            )
        ids = [str(row.event_id) for row in await stored(async_store)]
        await everything.wait_for(ids)
        relay.stop()
        await asyncio.wait_for(running, PATIENCE)
    received = await everything.settle()
    assert len(received) == len(ids) == 300
    streams = in_each_stream(received)
    assert all(versions == list(range(1, len(versions) + 1)) for versions in streams.values())
    assert in_each_stream(await one_stream.settle()) == {"account-3": streams["account-3"]}


# -- routing keys ---------------------------------------------------------------------------


def test_a_routing_key_over_255_bytes_is_shortened_the_same_way_every_time() -> None:
    short = "shop.OrderPaid.order-1"
    assert routing_key_for(short) == short
    exactly = "s." + "x" * (MAX_ROUTING_KEY_BYTES - 2)
    assert routing_key_for(exactly) == exactly
    for stream in ("é" * 200, "order-" + "9" * 300, "€" * 90):  # 2, 1 and 3 bytes a character
        subject = f"shop.OrderPaid.{stream}"
        key = routing_key_for(subject)
        assert len(key.encode()) <= MAX_ROUTING_KEY_BYTES
        assert len(key.encode()) >= MAX_ROUTING_KEY_BYTES - 2  # at most a character is cut
        assert key.startswith("shop.OrderPaid.")
        assert subject.startswith(key.rpartition("~")[0])
        assert key == routing_key_for(subject)
    assert routing_key_for("shop.T." + "a" * 300) != routing_key_for("shop.T." + "a" * 299 + "b")


async def test_an_event_whose_subject_is_too_long_arrives_under_its_shortened_key(
    async_store: facta.AsyncEventStore, rabbit: Rabbit
) -> None:
    inbox = await rabbit.inbox("facta.tests.rabbitmq.Shipped.#")
    stream = "order-" + "ü" * 150  # a 310-byte subject
    await async_store.append(stream, [Shipped(1), Shipped(2)], facta.ANY)
    await readable(async_store)
    async with Relay(async_store, rabbit.broker(), name="long") as relay:
        assert await relay.catch_up() == 2
    ids = [str(row.event_id) for row in await stored(async_store)]
    await inbox.wait_for(ids)
    received = await inbox.settle()
    key = routing_key_for(f"facta.tests.rabbitmq.Shipped.{stream}")
    assert [(m.routing_key, m.headers["Facta-Stream"]) for m in received] == [(key, stream)] * 2


# -- acknowledgements -----------------------------------------------------------------------


def messages(*subjects: str) -> list[Message]:
    return [
        Message(subject, str(uuid.uuid4()), b"{}", {"Facta-Stream": subject}, Checkpoint(0, n))
        for n, subject in enumerate(subjects, 1)
    ]


async def test_a_message_no_queue_takes_ends_the_confirmed_prefix_and_is_named(
    rabbit: Rabbit, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = await rabbit.inbox("routed.#")
    sent = messages("routed.1", "routed.2", "nowhere.3", "routed.4")
    async with rabbit.broker() as broker:
        with caplog.at_level(logging.WARNING, logger="facta.publishing"):
            assert await broker.publish("r", sent) == 2
        assert f"returned event {sent[2].event_id} (nowhere.3)" in caplog.text
        with pytest.raises(BrokerUnavailable, match=f"returned event {sent[2].event_id}") as e:
            await broker.publish("r", sent[2:])
        assert "no queue bound to exchange" in str(e.value)
        assert "routing key 'nowhere.3'" in str(e.value)
    async with rabbit.broker(mandatory=False) as broker:  # RabbitMQ drops what no queue takes
        assert await broker.publish("r", sent[2:]) == 2
    await inbox.wait_for([sent[0].event_id, sent[1].event_id, sent[3].event_id])


async def test_many_messages_are_confirmed_together_and_arrive_in_the_order_given(
    rabbit: Rabbit,
) -> None:
    inbox = await rabbit.inbox("#")
    sent = messages(*(f"bulk.{n % 7}" for n in range(1000)))
    async with rabbit.broker() as broker:
        assert await broker.publish("r", sent) == 1000
    await inbox.wait_for([m.event_id for m in sent])
    assert [m.message_id for m in await inbox.settle()] == [m.event_id for m in sent]


# -- connections ----------------------------------------------------------------------------


async def test_an_unreachable_server_is_unavailable_and_named_without_the_password() -> None:
    broker = RabbitMQBroker("amqp://guest:s3cret-pw@127.0.0.1:1/shop", timeout=5)
    with pytest.raises(BrokerUnavailable, match="cannot connect") as e:
        await broker.open()
    assert "at amqp://guest@127.0.0.1:1/shop:" in str(e.value)
    assert "s3cret-pw" not in str(e.value)
    with pytest.raises(BrokerUnavailable, match="not connected to RabbitMQ at amqp://guest@"):
        await broker.publish("r", messages("a.1"))
    await broker.close()


async def test_a_wrong_password_is_unavailable_and_not_repeated(rabbit: Rabbit) -> None:
    broker = RabbitMQBroker(AMQP_URL.replace(":guest@", ":n0t-the-pw@"), timeout=5)
    with pytest.raises(BrokerUnavailable, match="cannot connect to RabbitMQ at amqp://guest@") as e:
        await broker.open()
    assert "n0t-the-pw" not in str(e.value)


def test_only_amqp_urls_are_taken() -> None:
    with pytest.raises(ConfigurationError, match="amqp:// or amqps://, got 'nats://u@h:4222/'"):
        RabbitMQBroker("nats://u:pw@h:4222")
    assert RabbitMQBroker("amqps://h").address == "amqps://h:5671/"
    assert RabbitMQBroker("amqp://u:pw@h", prefix="shop").exchange_name == "shop"


async def test_open_and_close_may_be_called_twice(rabbit: Rabbit) -> None:
    await rabbit.inbox("twice.#")
    broker = rabbit.broker()
    await broker.close()  # before any open
    await broker.open()
    await broker.open()
    assert await broker.publish("r", messages("twice.1")) == 1
    await broker.close()
    await broker.close()
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await broker.publish("r", messages("twice.2"))
    async with broker:  # and again after a close
        assert await broker.publish("r", messages("twice.3")) == 1


async def test_an_exchange_of_another_kind_is_a_configuration_error(rabbit: Rabbit) -> None:
    name = rabbit.another_name()
    await rabbit.channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
    broker = RabbitMQBroker(AMQP_URL, exchange=name)
    with pytest.raises(ConfigurationError, match=f"durable topic exchange '{name}'"):
        await broker.open()
    await broker.close()


async def test_a_relay_reconnects_when_its_connection_is_lost(
    async_store: facta.AsyncEventStore, rabbit: Rabbit, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = await rabbit.inbox("#")
    broker = rabbit.broker()
    await async_store.append("order-1", [Shipped(1)], facta.ANY)
    await readable(async_store)
    async with Relay(async_store, broker, name="lost", max_backoff=0.05) as relay:
        assert await relay.catch_up() == 1
        connection = broker._connection  # the server closing it would look the same
        assert connection is not None
        await connection.close()
        await async_store.append("order-1", [Shipped(2)], facta.ANY)
        await readable(async_store)
        with caplog.at_level(logging.WARNING, logger="facta.publishing"):
            assert await relay.catch_up() == 1
    assert "not connected to RabbitMQ at amqp://guest@" in caplog.text
    ids = [str(row.event_id) for row in await stored(async_store)]
    await inbox.wait_for(ids)
    assert [m.message_id for m in await inbox.settle()] == ids


# -- a relay killed ---------------------------------------------------------------------------


class Applied(Projection[Any]):
    """What an inbox applied, in order: (stream, version, event id)."""

    name = "applied"

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []

    @handles(Shipped)
    def shipped(self, event: RecordedEvent, connection: Any) -> None:
        self.events.append((event.stream_id, event.version, str(event.event_id)))


class SlowToConfirm(RabbitMQBroker):
    """Answers a while after RabbitMQ confirmed the batch: widens the window between what the
    exchange took and the checkpoint the store saves, where a kill leaves messages to resend
    (an unloaded machine otherwise sends a batch and saves its checkpoint within moments)."""

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        confirmed = await super().publish(relay, messages)
        await asyncio.sleep(0.01)
        return confirmed


async def run_relay(store_url: str, amqp_url: str, exchange: str) -> None:
    """The relay the kill test runs in a subprocess: publishes until SIGTERM."""
    async with facta.connect_async(store_url) as store:
        broker = SlowToConfirm(amqp_url, exchange=exchange)
        async with Relay(
            store,
            broker,
            name="killed",
            batch_size=40,
            poll_interval=0.02,
            max_backoff=0.5,
            wait=True,
        ) as relay:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, relay.stop)
            print("ready", flush=True)
            await relay.run()


async def start_relay(store_url: str, exchange: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, store_url, AMQP_URL, exchange, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), PATIENCE) == b"ready\n"
    return process


async def append_slowly(store: facta.AsyncEventStore, rng: random.Random) -> None:
    """KILLED_EVENTS events, 5 at a time, in 25 streams taking turns at random."""
    for _ in range(KILLED_EVENTS // 5):
        await store.append(
            f"account-{rng.randrange(25)}", [Shipped(n) for n in range(5)], facta.ANY
        )
        await asyncio.sleep(rng.uniform(0, 0.02))


@pytest.mark.slow
async def test_a_relay_killed_at_random_moments_delivers_every_event_once_after_deduplication(
    async_store: facta.AsyncEventStore, url: str, rabbit: Rabbit, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    inbox = await rabbit.inbox("#")
    # An inbox of another service consumes the same events from a queue of its own meanwhile.
    queue = await rabbit.channel.declare_queue(f"{rabbit.exchange}.inbox.applied", durable=True)
    await queue.bind(rabbit.exchange, "#")
    rabbit.queues.append(queue)
    applied = Applied()
    receiver = facta.connect_async(f"sqlite:///{tmp_path / 'receiver.db'}")
    receiving = ReceivingInbox(
        receiver,
        applied,
        RabbitMQSource(AMQP_URL, exchange=rabbit.exchange),
        name="applied",
        poll_interval=0.05,
    )
    await receiving.open()
    consuming = asyncio.create_task(receiving.run())
    appending = asyncio.create_task(append_slowly(async_store, rng))
    processes: list[asyncio.subprocess.Process] = []
    midway = 0  # kills that left messages sent but not checkpointed
    try:
        for kill in range(KILLS):
            # what was appended since the last kill becomes the new relay's backlog once
            # readable (a shared PostgreSQL holds it back a while): then a kill can land while
            # the relay is sending it, rather than while it waits for the log to show it
            await readable(async_store)
            before = len(inbox.messages)
            processes.append(await start_relay(url, rabbit.exchange))
            if kill % 2:  # at a random moment after it is ready: starting, sending or idle
                await asyncio.sleep(rng.uniform(0.0, 0.2))
            else:  # once a random number of its messages arrived: while it is sending (how
                # soon after it is ready it sends depends on how busy the machine is)
                await sent(async_store, inbox, before + rng.randint(1, 80), appending)
            processes[-1].kill()
            assert await processes[-1].wait() == -signal.SIGKILL
            midway += await past_the_checkpoint(async_store, inbox, "killed") > 0
        await appending
        rows = await stored(async_store)
        processes.append(await start_relay(url, rabbit.exchange))
        ids = [str(row.event_id) for row in rows]
        await inbox.wait_for(ids)
        processes[-1].send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(processes[-1].wait(), PATIENCE) == 0
        received = await inbox.settle()
        for _ in range(int(PATIENCE * 20)):
            if receiving.applied + receiving.duplicates >= len(received):
                break
            await asyncio.sleep(0.05)
    finally:
        appending.cancel()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        receiving.stop()
        await asyncio.wait_for(consuming, PATIENCE)
        await receiving.close()
        await receiver.close()
    once = first_of_each(received)
    duplicates = len(received) - len(once)
    assert len(rows) == KILLED_EVENTS, f"seed {seed}"
    assert [m.message_id for m in once] == ids, f"seed {seed}; {duplicates} duplicates"
    streams = in_each_stream(once)
    assert all(v == list(range(1, len(v) + 1)) for v in streams.values()), f"seed {seed}"
    assert midway > 0, f"seed {seed}: no kill landed while the relay was sending"
    # The inbox applied each event once, each stream in order, and dropped every repeat.
    assert sorted(event_id for _, _, event_id in applied.events) == sorted(ids), f"seed {seed}"
    reached: dict[str, int] = {}
    for stream, version, _ in applied.events:
        assert version == reached.get(stream, 0) + 1, f"seed {seed}: {stream} v{version}"
        reached[stream] = version
    assert receiving.duplicates == duplicates, f"seed {seed}"
    print(
        f"seed {seed}: {midway} of {KILLS} kills midway; {len(received)} messages for "
        f"{len(ids)} events ({duplicates} duplicates, all dropped by the inbox)"
    )


if __name__ == "__main__":
    asyncio.run(run_relay(*sys.argv[1:]))
