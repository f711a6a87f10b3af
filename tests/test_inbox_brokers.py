"""Inboxes on the real brokers (the shared NATS JetStream, RabbitMQ and Redis servers, each
test with a stream, exchange or key prefix of its own): each event applied once, each stream
in order, when everything is published twice, when the inbox dies between its commit and its
acknowledgement, when a stream's versions come out of order (parked, or refused and delivered
again by the broker), when messages do not read or decode; and an inbox SIGKILLed at random
moments while a relay publishes and a writer appends.

Run as a script, this file is the inbox those tests kill:
``python test_inbox_brokers.py BROKER_JSON RECEIVER_URL``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import msgspec
import nats
import nats.errors
import nats.js.errors
import pytest
import redis.asyncio
import redis.exceptions

import facta
from facta.events import Checkpoint, RecordedEvent
from facta.projections import OnError, Projection, handles
from facta.publishing import (
    Broker,
    Delivery,
    Gaps,
    Inbox,
    InboxError,
    Message,
    Relay,
    Source,
    message_for,
)
from facta.publishing.nats import JetStreamBroker, JetStreamSource, nats_subject
from facta.publishing.rabbitmq import RabbitMQBroker, RabbitMQSource
from facta.publishing.redis import RedisBroker, RedisSource
from facta.records import StoredEvent

NATS_URL = os.environ.get("FACTA_TEST_NATS_URL", "nats://127.0.0.1:4222")
AMQP_URL = os.environ.get("FACTA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("FACTA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PATIENCE = 60.0  # seconds to wait for what a broker delivers on a busy machine
ACK_WAIT = 1.0  # JetStream: a message not acknowledged comes again after this long
KILLS = 6
KILLED_EVENTS = 1200


@facta.event("tests.inbox_brokers.Paid")
@dataclass(frozen=True)
class Paid:
    amount: int


class Ledger(Projection[sqlite3.Connection]):
    """One row per event applied, numbered in the order applied (SQLite)."""

    name = "ledger"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " event_id TEXT, stream TEXT, version INT, amount INT)"
        )

    @handles(Paid)
    def paid(self, event: RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO ledger (event_id, stream, version, amount) VALUES (?, ?, ?, ?)",
            (str(event.event_id), event.stream_id, event.version, event.data.amount),
        )


def ledger(path: Path) -> list[tuple[str, str, int]]:
    """(event id, stream, version) of every row, in the order applied."""
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            rows = db.execute("SELECT event_id, stream, version FROM ledger ORDER BY seq")
            return [tuple(row) for row in rows.fetchall()]
        except sqlite3.OperationalError:  # the inbox has not made its table yet
            return []


# -- one adapter per broker -------------------------------------------------------------------


class Server(abc.ABC):
    """A broker as the tests use it: a place of the test's own there, a relay's broker, an
    inbox's source, and a way to publish any message, as another program could."""

    kind: str
    prefix = "facta"  # the relay's: its subjects' first token

    def __init__(self, token: str) -> None:
        self.token = token

    @abc.abstractmethod
    async def prepare(self) -> None:
        """Make the stream, exchange and queue, as a relay and an inbox would."""

    @abc.abstractmethod
    def broker(self) -> Broker: ...

    @abc.abstractmethod
    def source(self) -> Source: ...

    @abc.abstractmethod
    async def publish(self, subject: str, headers: dict[str, str], data: bytes) -> None:
        """Publish one message past any relay (no de-duplication by the broker)."""

    @abc.abstractmethod
    async def unacknowledged(self) -> int:
        """How many messages the inbox's subscription was given and did not acknowledge."""

    @abc.abstractmethod
    async def remove(self) -> None: ...

    def options(self) -> dict[str, str]:
        return {"kind": self.kind, "token": self.token}

    async def resend(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await self.publish(message.subject, message.headers, message.data)


class NatsServer(Server):
    kind = "nats"

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.stream, self.prefix = f"FACTA_TEST_{token}", f"facta_test_{token}"

    async def prepare(self) -> None:
        async with self.broker():
            pass  # the relay's broker makes the stream

    def broker(self) -> Broker:
        return JetStreamBroker(NATS_URL, stream=self.stream, prefix=self.prefix)

    def source(self) -> Source:
        return JetStreamSource(NATS_URL, stream=self.stream, ack_wait=ACK_WAIT)

    async def publish(self, subject: str, headers: dict[str, str], data: bytes) -> None:
        client = await nats.connect(NATS_URL)
        try:
            await client.jetstream().publish(
                nats_subject(subject), data, headers=headers, stream=self.stream
            )
        finally:
            await client.close()

    async def unacknowledged(self) -> int:
        client = await nats.connect(NATS_URL)
        try:
            info = await client.jetstream().consumer_info(self.stream, "ledger")
        finally:
            await client.close()
        return int(info.num_ack_pending or 0) + int(info.num_pending or 0)

    async def remove(self) -> None:
        client = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(self.stream)
        finally:
            await client.close()


class RabbitServer(Server):
    kind = "rabbitmq"

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.exchange = f"facta-test-{token}"
        self.queue = f"{self.exchange}.inbox.ledger"

    async def prepare(self) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(exchange, "#")

    def broker(self) -> Broker:
        return RabbitMQBroker(AMQP_URL, exchange=self.exchange, timeout=10)

    def source(self) -> Source:
        return RabbitMQSource(AMQP_URL, exchange=self.exchange, prefetch=200)

    async def publish(self, subject: str, headers: dict[str, str], data: bytes) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(self.exchange)
            await exchange.publish(aio_pika.Message(data, headers=dict(headers)), subject)

    async def unacknowledged(self) -> int:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, passive=True)
            return int(queue.declaration_result.message_count or 0)

    async def remove(self) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)


class RedisServer(Server):
    kind = "redis"

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.prefix = f"facta-test-{token}"

    async def prepare(self) -> None:
        pass  # the source makes the group (from the stream's start) when it opens

    def broker(self) -> Broker:
        return RedisBroker(REDIS_URL, self.prefix)

    def source(self) -> Source:
        return RedisSource(REDIS_URL, self.prefix)

    async def publish(self, subject: str, headers: dict[str, str], data: bytes) -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            fields: dict[str | bytes, str | bytes] = {"subject": subject, "data": data}
            fields.update(headers)
            await client.xadd(f"{self.prefix}:events", fields)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    async def unacknowledged(self) -> int:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            groups: Any = await client.xinfo_groups(f"{self.prefix}:events")
        finally:
            await client.aclose()
        (group,) = [g for g in groups if g["name"] == b"ledger"]
        return int(group["pending"]) + int(group["lag"] or 0)

    async def remove(self) -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            async for key in client.scan_iter(match=f"{self.prefix}:*"):
                await client.delete(key)
        finally:
            await client.aclose()


SERVERS: dict[str, type[Server]] = {
    "nats": NatsServer,
    "rabbitmq": RabbitServer,
    "redis": RedisServer,
}


async def reachable(kind: str) -> str | None:
    """Why the shared server of ``kind`` cannot be used (None if it can)."""
    try:
        if kind == "nats":
            client = await nats.connect(NATS_URL, allow_reconnect=False, connect_timeout=2)
            await client.close()
        elif kind == "rabbitmq":
            connection = await aio_pika.connect(AMQP_URL, timeout=5)
            await connection.close()
        else:
            redis_client = redis.asyncio.Redis.from_url(REDIS_URL)
            try:
                await redis_client.ping()
            finally:
                await redis_client.aclose()
    except (OSError, TimeoutError, nats.errors.Error, aiormq.exceptions.AMQPError) as e:
        return f"{kind}: {e}"
    except redis.exceptions.RedisError as e:
        return f"{kind}: {e}"
    return None


@pytest.fixture(params=sorted(SERVERS))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """Each broker in turn, with a place of the test's own, removed afterwards."""
    kind: str = request.param
    why = await reachable(kind)
    if why is not None:
        pytest.skip(f"the shared broker is not running ({why}); test.sh starts it")
    found = SERVERS[kind](uuid.uuid4().hex[:12])
    await found.prepare()
    try:
        yield found
    finally:
        await found.remove()


@pytest.fixture
async def sender(tmp_path: Path) -> AsyncIterator[facta.AsyncEventStore]:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'sender.db'}") as store:
        yield store


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[facta.AsyncEventStore]:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'receiver.db'}") as store:
        yield store


async def log(store: facta.AsyncEventStore) -> list[StoredEvent]:
    return await store.recorder.read_all(Checkpoint(), None, 100_000)


def messages_of(rows: Sequence[StoredEvent], server: Server) -> list[Message]:
    return [message_for(row, None, None, prefix=server.prefix) for row in rows]


async def append_in_streams(store: facta.AsyncEventStore, count: int, streams: int) -> None:
    for n in range(count):
        await store.append(f"order-{n % streams}", [Paid(n)], facta.ANY)


def in_order_once(rows: Sequence[tuple[str, str, int]], stored: Sequence[StoredEvent]) -> None:
    """The ledger holds every stored event once, each stream's versions in order."""
    assert sorted(event_id for event_id, _, _ in rows) == sorted(str(r.event_id) for r in stored)
    reached: dict[str, int] = {}
    for _, stream, version in rows:
        assert version == reached.get(stream, 0) + 1, f"{stream} v{version} out of order"
        reached[stream] = version


async def drained(server: Server) -> None:
    """Until the broker holds nothing the inbox was given and did not acknowledge."""
    for _ in range(int(PATIENCE * 10)):
        if await server.unacknowledged() == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{server.kind}: messages were left unacknowledged")


def stored_row(stream_id: str, version: int, amount: int, schema_version: int = 1) -> StoredEvent:
    return StoredEvent(
        stream_id,
        version,
        version,
        0,
        uuid.uuid4(),
        "tests.inbox_brokers.Paid",
        schema_version,
        0,
        msgspec.json.encode(Paid(amount)),
        b"{}",
        datetime.now(UTC),
    )


async def until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` came true within PATIENCE (looked at every 20 ms)."""
    for _ in range(int(PATIENCE * 50)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


class Crash(BaseException):
    """The inbox's process dying where the test says."""


# -- exactly once, in order ---------------------------------------------------------------------


async def test_every_event_published_twice_is_applied_once_and_each_stream_in_order(
    server: Server, sender: facta.AsyncEventStore, receiver: facta.AsyncEventStore, tmp_path: Path
) -> None:
    await append_in_streams(sender, 60, 7)
    async with Relay(
        sender, server.broker(), name="first", prefix=server.prefix, batch_size=16
    ) as relay:
        assert await relay.catch_up() == 60
    rows = await log(sender)
    await server.resend(messages_of(rows[:45], server))  # a relay that lost its checkpoint, say
    async with Inbox(receiver, Ledger(), server.source(), name="ledger", batch_size=25) as inbox:
        applied = await inbox.catch_up(idle=1.0)
        assert (applied, inbox.duplicates, inbox.parked) == (60, 45, 0)
    in_order_once(ledger(tmp_path / "receiver.db"), rows)
    await drained(server)


async def test_an_inbox_that_dies_after_its_commit_gets_the_batch_again_and_drops_it(
    server: Server, sender: facta.AsyncEventStore, receiver: facta.AsyncEventStore, tmp_path: Path
) -> None:
    await append_in_streams(sender, 20, 3)
    async with Relay(sender, server.broker(), name="relay", prefix=server.prefix) as relay:
        await relay.catch_up()
    source = server.source()

    async def crash(deliveries: Sequence[Delivery]) -> None:
        raise Crash

    source.acknowledge = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        async with Inbox(receiver, Ledger(), source, name="ledger") as inbox:
            await inbox.catch_up(idle=1.0)
    committed = ledger(tmp_path / "receiver.db")
    assert committed  # the batch was committed, never acknowledged
    async with Inbox(receiver, Ledger(), server.source(), name="ledger") as inbox:
        await inbox.catch_up(idle=ACK_WAIT + 1.0)  # JetStream delivers again after ack_wait
        assert inbox.duplicates >= len(committed)
    in_order_once(ledger(tmp_path / "receiver.db"), await log(sender))
    await drained(server)


async def test_a_version_that_comes_early_is_parked_until_the_ones_before_it_come(
    server: Server, receiver: facta.AsyncEventStore, tmp_path: Path
) -> None:
    rows = [stored_row("order-1", version, version * 10) for version in (1, 2, 3)]
    first, second, third = messages_of(rows, server)
    await server.resend([third, second])
    async with Inbox(receiver, Ledger(), server.source(), name="ledger") as inbox:
        assert await inbox.catch_up(idle=0.5) == 0
        assert inbox.parked == 2
        await server.resend([first])
        assert await inbox.catch_up(idle=0.5) == 3
        assert inbox.parked == 0
    in_order_once(ledger(tmp_path / "receiver.db"), rows)
    await drained(server)


async def test_refused_versions_come_again_from_the_broker_after_their_delay(
    server: Server, receiver: facta.AsyncEventStore, tmp_path: Path
) -> None:
    rows = [stored_row("order-1", version, version) for version in (1, 2, 3)]
    first, second, third = messages_of(rows, server)
    await server.resend([third, second])
    inbox = Inbox(
        receiver,
        Ledger(),
        server.source(),
        name="ledger",
        gaps=Gaps.REFUSE,
        redelivery_delay=0.3,
        poll_interval=0.05,
    )
    async with inbox:
        running = asyncio.create_task(inbox.run())  # refused messages keep coming back
        try:
            assert await until(lambda: inbox.refused >= 4)  # both, twice at least
            assert await inbox.held() == []
            assert inbox.applied == 0
            await server.resend([first])
            assert await until(lambda: inbox.applied == 3)
        finally:
            inbox.stop()
            await asyncio.wait_for(running, PATIENCE)
    in_order_once(ledger(tmp_path / "receiver.db"), rows)
    await drained(server)


async def test_messages_that_do_not_read_or_decode_stop_the_inbox_or_go_to_the_dead_letters(
    server: Server, receiver: facta.AsyncEventStore, tmp_path: Path
) -> None:
    good = [stored_row("order-1", 1, 1), stored_row("order-1", 3, 3)]
    newer = stored_row("order-1", 2, 2, schema_version=7)  # a schema this code does not know
    first, third = messages_of(good, server)
    (unknown,) = messages_of([newer], server)
    await server.resend([first])
    await server.publish(f"{server.prefix}.not.facta", {"Content": "text"}, b"hello")
    await server.resend([unknown, third])
    async with Inbox(receiver, Ledger(), server.source(), name="ledger") as inbox:
        with pytest.raises(InboxError, match="it has no Facta-Event-Id"):
            await inbox.catch_up(idle=0.5)
    assert [version for _, _, version in ledger(tmp_path / "receiver.db")] == [1]
    dead_letters = Inbox(
        receiver, Ledger(), server.source(), name="ledger", on_error=OnError.DEAD_LETTER
    )
    async with dead_letters as inbox:
        await inbox.catch_up(idle=ACK_WAIT + 1.0)  # the broker delivers them again
        held = await inbox.held()
    assert [(m.stream_id, m.version) for m in held] == [(None, None), ("order-1", 2)]
    assert held[0].data == b"hello"
    assert held[1].error is not None
    assert "schema version 7" in held[1].error
    assert [version for _, _, version in ledger(tmp_path / "receiver.db")] == [1, 3]
    await drained(server)


# -- an inbox killed at random moments ----------------------------------------------------------


def server_from(options: dict[str, str]) -> Server:
    return SERVERS[options["kind"]](options["token"])


async def work(options: str, receiver_url: str) -> None:
    """The inbox the kill test runs in a subprocess: applies messages until SIGTERM."""
    server = server_from(json.loads(options))
    async with (
        facta.connect_async(receiver_url) as store,
        Inbox(
            store,
            Ledger(),
            server.source(),
            name="ledger",
            batch_size=50,
            poll_interval=0.05,
            max_backoff=0.5,
            wait=True,
        ) as inbox,
    ):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, inbox.stop)
        print("ready", flush=True)
        await inbox.run()


async def start_inbox(server: Server, receiver_url: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        json.dumps(server.options()),
        receiver_url,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), PATIENCE) == b"ready\n"
    return process


async def append_slowly(store: facta.AsyncEventStore, rng: random.Random) -> None:
    """KILLED_EVENTS events, 1 to 6 at a time, in 15 streams taking turns at random."""
    n = 0
    while n < KILLED_EVENTS:
        size = min(KILLED_EVENTS - n, rng.randint(1, 6))
        await store.append(
            f"account-{rng.randrange(15)}", [Paid(n + i) for i in range(size)], facta.ANY
        )
        n += size
        await asyncio.sleep(rng.uniform(0, 0.01))


@pytest.mark.slow
async def test_an_inbox_killed_at_random_moments_applies_every_event_once_each_stream_in_order(
    server: Server, sender: facta.AsyncEventStore, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    receiver_path = tmp_path / "receiver.db"
    receiver_url = f"sqlite:///{receiver_path}"
    async with facta.connect_async(receiver_url):
        pass  # creates the store before the inboxes race to
    appending = asyncio.create_task(append_slowly(sender, rng))
    relay = Relay(
        sender,
        server.broker(),
        name="relay",
        prefix=server.prefix,
        batch_size=40,
        poll_interval=0.02,
        max_backoff=0.5,
    )
    processes: list[asyncio.subprocess.Process] = []
    midway = 0  # kills that landed while the inbox was applying
    async with relay:
        relaying = asyncio.create_task(relay.run())
        try:
            for _ in range(KILLS):
                before = len(ledger(receiver_path))
                processes.append(await start_inbox(server, receiver_url))
                await asyncio.sleep(rng.uniform(0.05, 0.5))
                processes[-1].kill()
                assert await processes[-1].wait() == -signal.SIGKILL
                midway += len(ledger(receiver_path)) > before
            await appending
            rows = await log(sender)
            processes.append(await start_inbox(server, receiver_url))
            for _ in range(int(PATIENCE * 10)):
                if len(ledger(receiver_path)) >= len(rows):
                    break
                await asyncio.sleep(0.1)
            processes[-1].send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(processes[-1].wait(), PATIENCE) == 0
        finally:
            appending.cancel()
            relay.stop()
            await asyncio.wait_for(relaying, PATIENCE)
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    applied = ledger(receiver_path)
    assert len(rows) == KILLED_EVENTS
    assert len(applied) == len(rows), f"seed {seed}: {len(applied)} rows for {len(rows)} events"
    in_order_once(applied, rows)
    assert midway > 0, f"seed {seed}: no kill landed while the inbox was applying"
    print(f"{server.kind}, seed {seed}: {midway} of {KILLS} kills while applying; once, in order")


if __name__ == "__main__":
    asyncio.run(work(*sys.argv[1:3]))
