"""The Redis broker against real servers: each event in the stream once, in log order, with its
stored bytes; the checkpoint written with the batch; exactly once through SIGKILLed relays (and
into an inbox, facta.publishing.Inbox, that consumes meanwhile) and a Redis outage (a private
``redis-server``).

Run as a script, this file is the worker: a relay publishing to Redis until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

import facta
from facta.errors import ConfigurationError
from facta.events import Checkpoint, RecordedEvent
from facta.projections import Projection, handles, statuses
from facta.publishing import BrokerUnavailable, Inbox, Message, Relay, message_for
from facta.publishing.redis import RedisBroker, RedisSource
from facta.records import StoredEvent

# The shared server (FACTA_TEST_REDIS_URL points the tests elsewhere); every test uses keys
# under a prefix of its own and deletes them.
REDIS_URL = os.environ.get("FACTA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PATIENCE = 60.0  # seconds a relay may take to publish what it was given
KILLS = 8
CRASH_EVENTS = 3000


@facta.event("tests.publishing_redis.Shipped")
@dataclass(frozen=True)
class Shipped:
    n: int
    note: str = ""


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted afterwards."""
    name = f"facta-test-{uuid.uuid4().hex[:12]}"
    yield name
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{name}:*"):
            client.delete(key)


def entries(url: str, stream: str) -> list[dict[str, bytes]]:
    """The stream's entries in order, fields by name."""
    with redis.Redis.from_url(url) as client:
        return [
            {name.decode(): value for name, value in fields.items()}
            for _, fields in client.xrange(stream)
        ]


def stored_checkpoint(url: str, key: str) -> str | None:
    with redis.Redis.from_url(url) as client:
        value = client.get(key)
    return None if value is None else value.decode()


def text(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.transaction_id}:{checkpoint.position}"


async def readable(store: facta.AsyncEventStore) -> None:
    """On PostgreSQL, wait until other sessions' transactions no longer hide our events."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:
        assert await wait(PATIENCE)


async def test_a_relay_from_each_store_puts_every_event_in_the_stream_once_in_log_order(
    async_store: facta.AsyncEventStore, prefix: str
) -> None:
    await async_store.append("order-1", [Shipped(1), Shipped(2, "x" * 3000)], facta.ANY)
    correlated = facta.NewEvent(Shipped(3), metadata=facta.Metadata(correlation_id="c-1"))
    await async_store.append("order-2", [correlated], facta.ANY)
    await async_store.append_many(
        [facta.StreamAppend(f"order-{n}", [Shipped(n)], facta.ANY) for n in range(3, 9)]
    )
    await readable(async_store)
    broker = RedisBroker(REDIS_URL, prefix)
    async with Relay(async_store, broker, name="shipping", prefix="shop", batch_size=3) as relay:
        assert await relay.catch_up() == 9
        assert await relay.catch_up() == 0
        assert await broker.checkpoint("shipping") == relay.checkpoint
    rows = await async_store.recorder.read_all(Checkpoint(), None, 100)
    stream = entries(REDIS_URL, f"{prefix}:events")
    assert [e["event_id"].decode() for e in stream] == [str(row.event_id) for row in rows]
    for entry, row in zip(stream, rows, strict=True):
        assert entry["data"] == row.data  # the stored bytes, unchanged
        assert entry["subject"].decode() == f"shop.tests.publishing_redis.Shipped.{row.stream_id}"
        assert entry["Facta-Stream"].decode() == row.stream_id
        assert entry["Facta-Version"].decode() == str(row.version)
        assert entry["Facta-Checkpoint"].decode() == text(row.checkpoint)
    assert stream[2]["Facta-Correlation-Id"] == b"c-1"
    assert stored_checkpoint(REDIS_URL, f"{prefix}:relay:shipping") == text(relay.checkpoint)
    assert relay.checkpoint == rows[-1].checkpoint


def stored_events(count: int) -> list[StoredEvent]:
    return [
        StoredEvent(
            "order-1", n, n, 0, uuid.uuid4(), "OrderPaid", 1, 0, b"{}", b"{}", datetime.now(UTC)
        )
        for n in range(1, count + 1)
    ]


def messages(count: int) -> list[Message]:
    return [message_for(row, None, None, prefix="shop") for row in stored_events(count)]


async def test_messages_at_or_before_the_checkpoint_redis_holds_are_not_added_again(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent = messages(8)
    with caplog.at_level(logging.INFO, logger="facta.publishing"):
        async with RedisBroker(REDIS_URL, prefix) as broker:
            assert await broker.publish("resent", sent[:5]) == 5
            assert await broker.publish("resent", sent[:3]) == 3  # all held: nothing added
            assert await broker.publish("resent", sent[2:]) == 6  # three held, three new
            assert await broker.checkpoint("resent") == sent[-1].checkpoint
            assert await broker.checkpoint("another relay") is None
    stream = entries(REDIS_URL, f"{prefix}:events")
    assert [e["event_id"].decode() for e in stream] == [m.event_id for m in sent]
    said = [r.getMessage() for r in caplog.records if r.name == "facta.publishing"]
    assert "relay 'resent': 3 of 3 messages were in Redis stream" in said[0]
    assert "relay 'resent': 3 of 6 messages were in Redis stream" in said[1]


class Crash(BaseException):
    """The relay's process dying where the test says."""


async def test_a_relay_that_dies_after_redis_took_its_batch_resends_nothing(
    async_store: facta.AsyncEventStore, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await async_store.append("order-1", [Shipped(n) for n in range(1, 6)], facta.ANY)
    await readable(async_store)

    async def crash(*args: object) -> None:  # before the store saves the relay's checkpoint
        raise Crash

    async with Relay(async_store, RedisBroker(REDIS_URL, prefix), name="dies") as relay:
        monkeypatch.setattr(relay._checkpoints, "save", crash)
        with pytest.raises(Crash):
            await relay.catch_up()
    (status,) = [s for s in await async_store.recorder.projection_statuses() if s.name == "dies"]
    assert status.checkpoint == Checkpoint()  # the store never heard of the batch
    await async_store.append("order-1", [Shipped(6)], facta.ANY)
    await readable(async_store)
    async with Relay(async_store, RedisBroker(REDIS_URL, prefix), name="dies") as relay:
        assert await relay.catch_up() == 1  # only the new event: Redis's checkpoint is the truth
    stream = entries(REDIS_URL, f"{prefix}:events")
    assert [e["Facta-Version"] for e in stream] == [str(n).encode() for n in range(1, 7)]


async def test_maxlen_trims_the_stream_to_about_that_many_entries(prefix: str) -> None:
    sent = messages(1000)
    async with RedisBroker(REDIS_URL, prefix, maxlen=50) as broker:
        for start in range(0, 1000, 100):
            await broker.publish("trimmed", sent[start : start + 100])
    with redis.Redis.from_url(REDIS_URL) as client:
        length = client.xlen(f"{prefix}:events")
        last = client.xrevrange(f"{prefix}:events", count=1)[0][1]
    assert 50 <= length < 1000  # approximate trimming: whole nodes only
    assert last[b"event_id"].decode() == sent[-1].event_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_an_unreachable_redis_is_broker_unavailable_naming_the_server(prefix: str) -> None:
    port = free_port()
    broker = RedisBroker(f"redis://:secret@127.0.0.1:{port}/0", prefix, timeout=2)
    for attempt in (broker.open(), broker.publish("r", messages(1)), broker.checkpoint("r")):
        with pytest.raises(BrokerUnavailable, match=f"Redis at redis://127.0.0.1:{port}/0") as e:
            await attempt
        assert "secret" not in str(e.value)
    await broker.close()
    await broker.close()


async def test_keys_another_program_owns_are_refused_with_what_to_do(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(f"{prefix}:relay:taken", "not a checkpoint")
    async with RedisBroker(REDIS_URL, prefix) as broker:
        with pytest.raises(ConfigurationError, match="choose another prefix"):
            await broker.checkpoint("taken")
        with pytest.raises(ConfigurationError, match="holds 'not a checkpoint'"):
            await broker.publish("taken", messages(1))
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(f"{prefix}:events", "not a stream")
    async with RedisBroker(REDIS_URL, prefix) as broker:
        with pytest.raises(ConfigurationError, match="is not a stream, another program uses it"):
            await broker.publish("free", messages(1))
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisBroker("http://127.0.0.1:6379")


# -- a relay killed at random moments ----------------------------------------------------


class SlowToAcknowledge(RedisBroker):
    """Answers a while after Redis took the batch: widens the window between Redis's checkpoint
    and the store's, where a kill shows whether events would be sent twice."""

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        published = await super().publish(relay, messages)
        await asyncio.sleep(0.01)
        return published


def work(store_url: str, redis_url: str, prefix: str) -> None:
    """The worker: publish with a relay until SIGTERM, waiting for a dead relay's lock."""

    async def relay_until_stopped() -> None:
        async with (
            facta.connect_async(store_url) as store,
            Relay(
                store,
                SlowToAcknowledge(redis_url, prefix),
                name="crash",
                batch_size=25,
                poll_interval=0.05,
                max_backoff=0.5,
                wait=True,
            ) as relay,
        ):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, relay.stop)
            print("ready", flush=True)
            await relay.run()

    asyncio.run(relay_until_stopped())


def start_worker(store_url: str, prefix: str) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, __file__, store_url, REDIS_URL, prefix], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    assert worker.stdout.readline() == "ready\n"
    return worker


def end(worker: subprocess.Popen[str], how: signal.Signals) -> int:
    """Send ``how`` and wait for the worker (killing it if it outstays PATIENCE)."""
    try:
        worker.send_signal(how)
        return worker.wait(PATIENCE)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()


def append_slowly(store_url: str, count: int, seed: int, failures: list[BaseException]) -> None:
    """``count`` events in appends of 1 to 8 over 20 streams, a few milliseconds apart."""
    rng = random.Random(seed)
    try:
        with facta.connect(store_url) as store:
            n = 0
            while n < count:
                size = min(count - n, rng.randint(1, 8))
                stream = f"order-{rng.randrange(20)}"
                store.append(stream, [Shipped(n + i) for i in range(size)], facta.ANY)
                n += size
                time.sleep(rng.uniform(0.0, 0.006))
    except BaseException as e:
        failures.append(e)


def settle(store: facta.EventStore) -> None:
    """On PostgreSQL, wait until other sessions' transactions no longer hide our events."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:
        assert wait(PATIENCE)


def log_order(store_url: str) -> list[StoredEvent]:
    with facta.connect(store_url) as store:
        settle(store)
        return store.recorder.read_all(Checkpoint(), None, 10 * CRASH_EVENTS)


def store_checkpoint(store_url: str) -> Checkpoint:
    with facta.connect(store_url) as store:
        found = [s.checkpoint for s in statuses(store) if s.name == "crash"]
    return found[0] if found else Checkpoint()


def redis_checkpoint(prefix: str) -> Checkpoint:
    value = stored_checkpoint(REDIS_URL, f"{prefix}:relay:crash")
    if value is None:
        return Checkpoint()
    transaction_id, position = value.split(":")
    return Checkpoint(int(transaction_id), int(position))


class Applied(Projection[Any]):
    """What an inbox applied, in order: (stream, version, event id)."""

    name = "applied"

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []

    @handles(Shipped)
    def shipped(self, event: RecordedEvent, connection: Any) -> None:
        self.events.append((event.stream_id, event.version, str(event.event_id)))


class Consuming(threading.Thread):
    """An inbox of another service, reading the relay's Redis stream in a thread of its own
    (and a SQLite store of its own) while the relays are killed."""

    def __init__(self, prefix: str, store_path: Path) -> None:
        super().__init__()
        self.prefix, self.store_path, self.applied = prefix, store_path, Applied()
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inbox: Inbox | None = None

    def run(self) -> None:
        try:
            asyncio.run(self.consume())
        except BaseException as e:
            self.failure = e
        finally:
            self.ready.set()

    async def consume(self) -> None:
        source = RedisSource(REDIS_URL, self.prefix)
        async with (
            facta.connect_async(f"sqlite:///{self.store_path}") as store,
            Inbox(store, self.applied, source, name="applied", poll_interval=0.05) as inbox,
        ):
            self.loop, self.inbox = asyncio.get_running_loop(), inbox
            self.ready.set()
            await inbox.run()

    def stop(self) -> None:
        if self.loop is not None and self.inbox is not None:
            self.loop.call_soon_threadsafe(self.inbox.stop)
        self.join(PATIENCE)


def check_killed_relays_publish_each_event_exactly_once(
    store_url: str, prefix: str, receiver: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    with facta.connect(store_url):
        pass  # creates the store before the appender and the relays race to
    consuming = Consuming(prefix, receiver)
    consuming.start()
    assert consuming.ready.wait(PATIENCE)
    failures: list[BaseException] = []
    appender = threading.Thread(
        target=append_slowly, args=(store_url, CRASH_EVENTS, seed, failures)
    )
    appender.start()
    kills: list[tuple[Checkpoint, Checkpoint]] = []  # (the store's, Redis's) at each kill
    try:
        with facta.connect(store_url) as store:
            for _ in range(KILLS):
                # what was appended since the last kill is the new worker's backlog once
                # readable (a shared PostgreSQL holds it back a while): then a kill can land
                # while the worker is publishing it, not while it waits for the log to show it
                settle(store)
                worker = start_worker(store_url, prefix)
                time.sleep(rng.uniform(0.05, 0.4))
                end(worker, signal.SIGKILL)
                kills.append((store_checkpoint(store_url), redis_checkpoint(prefix)))
    finally:
        appender.join()
    assert not failures, failures
    log = log_order(store_url)
    worker = start_worker(store_url, prefix)
    try:
        deadline = time.monotonic() + PATIENCE
        while redis_checkpoint(prefix) != log[-1].checkpoint and time.monotonic() < deadline:
            time.sleep(0.05)
        deadline = time.monotonic() + PATIENCE
        while len(consuming.applied.events) < len(log) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stopped = end(worker, signal.SIGTERM)
        consuming.stop()
    assert stopped == 0
    assert consuming.failure is None, consuming.failure
    published = [e["event_id"].decode() for e in entries(REDIS_URL, f"{prefix}:events")]
    assert len(log) == CRASH_EVENTS
    assert len(published) == len(set(published)), f"seed {seed}: duplicates"
    assert published == [str(row.event_id) for row in log], f"seed {seed}"
    # The kills that landed after Redis took a batch and before the store saved its checkpoint:
    # a relay resuming from the store's checkpoint would have sent those events twice.
    ahead = [(ours, theirs) for ours, theirs in kills if theirs > ours]
    held = sum(1 for row in log for ours, theirs in ahead if ours < row.checkpoint <= theirs)
    print(f"{KILLS} kills, {len(ahead)} with Redis ahead of the store by {held} events in all")
    assert ahead, f"seed {seed}: no kill landed between Redis's checkpoint and the store's"
    # The inbox got each event once from the stream's consumer group, in the log's order.
    assert [event_id for _, _, event_id in consuming.applied.events] == published, f"seed {seed}"


@pytest.mark.slow
def test_sqlite_relays_killed_at_random_moments_publish_each_event_exactly_once(
    tmp_path: Path, prefix: str
) -> None:
    check_killed_relays_publish_each_event_exactly_once(
        f"sqlite:///{tmp_path / 'events.db'}", prefix, tmp_path / "receiver.db"
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_relays_killed_at_random_moments_publish_each_event_exactly_once(
    postgres_url: str, pg_schema: str, prefix: str, tmp_path: Path
) -> None:
    check_killed_relays_publish_each_event_exactly_once(
        f"{postgres_url}?schema={pg_schema}", prefix, tmp_path / "receiver.db"
    )


# -- a Redis outage ------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of the test's own whose data survives a SIGKILL (AOF, fsync always)."""

    def __init__(self, directory: str) -> None:
        self.port, self.directory = free_port(), directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "dir": self.directory}
        options |= {"appendonly": "yes", "appendfsync": "always"}
        arguments = [word for name, value in options.items() for word in (f"--{name}", value)]
        self.process = subprocess.Popen(["redis-server", *arguments], stdout=subprocess.DEVNULL)
        with redis.Redis.from_url(self.url) as client:
            for _ in range(500):
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.01)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="facta-redis-") as directory:
        server = PrivateRedis(directory)
        server.start()
        try:
            yield server
        finally:
            server.kill()


async def test_a_relay_waits_out_a_redis_outage_and_loses_or_repeats_nothing(
    tmp_path: Path, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}") as store:
        appended = 0
        enough = asyncio.Event()

        async def append() -> None:  # five events every few milliseconds, until enough
            nonlocal appended
            while not enough.is_set():
                events = [Shipped(appended + i) for i in range(5)]
                await store.append(f"order-{appended % 7}", events, facta.ANY)
                appended += 5
                await asyncio.sleep(0.005)

        broker = RedisBroker(private_redis.url, "outage", timeout=1)
        with caplog.at_level(logging.WARNING, logger="facta.publishing"):
            async with Relay(
                store, broker, name="outage", batch_size=20, poll_interval=0.05, max_backoff=0.5
            ) as relay:
                running = asyncio.create_task(relay.run())
                appending = asyncio.create_task(append())
                await asyncio.sleep(1.0)
                private_redis.kill()  # mid-run, events still coming
                before = (relay.published, appended)
                await asyncio.sleep(3.0)
                await asyncio.to_thread(private_redis.start)
                restarted = appended
                await asyncio.sleep(1.0)
                enough.set()
                await appending
                last = (await store.recorder.read_all(Checkpoint(), None, 2 * appended))[-1]
                for _ in range(int(PATIENCE * 20)):
                    if relay.checkpoint == last.checkpoint:
                        break
                    await asyncio.sleep(0.05)
                relay.stop()
                await asyncio.wait_for(running, PATIENCE)
        rows = await store.recorder.read_all(Checkpoint(), None, 2 * appended)
    published = [e["event_id"].decode() for e in entries(private_redis.url, "outage:events")]
    assert before[0] > 0  # published before the outage,
    assert before[1] < restarted < appended  # appended during it and after it
    assert len(rows) == appended
    assert published == [str(row.event_id) for row in rows]
    assert stored_checkpoint(private_redis.url, "outage:relay:outage") == text(last.checkpoint)
    warnings = [r.getMessage() for r in caplog.records if r.name == "facta.publishing"]
    unavailable = [w for w in warnings if "the broker is unavailable" in w]
    assert unavailable, warnings
    assert f"Redis at {private_redis.url}" in unavailable[0]
    print(
        f"{before[0]} events published before the outage, {restarted - before[1]} appended "
        f"during it, {appended} in all; {len(unavailable)} back-offs; each event once"
    )


if __name__ == "__main__":
    work(*sys.argv[1:4])
