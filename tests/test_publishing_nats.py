"""JetStreamBroker against real NATS servers: the shared one (unique stream and subjects per
test, deleted after it) and private ones this file starts, stops and restarts (outages)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.js import JetStreamContext

import facta
from facta.errors import ConfigurationError
from facta.events import NewEvent
from facta.publishing import BrokerUnavailable, Message, Relay, message_for
from facta.publishing.nats import JetStreamBroker, nats_subject
from facta.records import StoredEvent

NATS_URL = os.environ.get("FACTA_TEST_NATS_URL", "nats://127.0.0.1:4222")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
# ``readable_async`` (conftest): wait until the log shows what was committed, as relays read it.
Readable = Callable[[facta.AsyncEventStore], Awaitable[None]]


@facta.event("tests.nats.Shipped")
@dataclass(frozen=True)
class Shipped:
    n: int
    note: str = ""


@facta.event("tests.nats.Odd type*>")
@dataclass(frozen=True)
class Odd:
    n: int


@dataclass
class JetStream:
    """The shared server, a stream name and a subject prefix no other test uses."""

    js: JetStreamContext
    stream: str
    prefix: str

    def broker(
        self,
        *,
        subjects: Sequence[str] | None = None,
        create_stream: bool = True,
        max_age: float | None = None,
        duplicate_window: float = 120.0,
    ) -> JetStreamBroker:
        return JetStreamBroker(
            NATS_URL,
            stream=self.stream,
            prefix=self.prefix,
            subjects=subjects,
            create_stream=create_stream,
            max_age=max_age,
            duplicate_window=duplicate_window,
        )


@pytest.fixture
async def jetstream() -> AsyncIterator[JetStream]:
    """A connection to the shared NATS server; the test's stream is deleted afterwards."""
    try:
        client = await nats.connect(NATS_URL, allow_reconnect=False, connect_timeout=2)
    except (OSError, nats.errors.Error) as e:
        pytest.skip(f"no NATS server at {NATS_URL} ({e}); test.sh starts one")
    token = uuid.uuid4().hex[:12]
    found = JetStream(client.jetstream(), f"FACTA_TEST_{token}", f"facta_test_{token}")
    try:
        yield found
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await found.js.delete_stream(found.stream)
        await client.close()


async def consume(js: JetStreamContext, stream: str, subject: str, count: int) -> list[Msg]:
    """Every message of ``stream`` under ``subject``, through an ordered (ephemeral, push)
    consumer, once ``count`` arrived; and whatever else comes within 0.3 s after them."""
    subscription = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    received: list[Msg] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                received.append(await subscription.next_msg(timeout=1))
        with contextlib.suppress(TimeoutError):
            received.append(await subscription.next_msg(timeout=0.3))  # a duplicate
    finally:
        await subscription.unsubscribe()
    return received


async def until(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` came true within ``seconds`` (looked at every 10 ms)."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds * 100) + 1):
        if condition() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    return condition()


async def stored_rows(store: facta.AsyncEventStore) -> list[StoredEvent]:
    """The whole log as stored (bytes as written)."""
    return await store.recorder.read_all(facta.Checkpoint(), None, 100_000)


def assert_in_order_once(messages: Sequence[Msg], rows: Sequence[StoredEvent]) -> None:
    """The stream holds each stored event once, in the log's order, with its stored bytes."""
    assert [m.headers and m.headers["Nats-Msg-Id"] for m in messages] == [
        str(row.event_id) for row in rows
    ]
    assert [m.data for m in messages] == [row.data for row in rows]
    versions: dict[str, int] = {}
    for message in messages:
        assert message.headers is not None
        stream_id, version = message.headers["Facta-Stream"], int(message.headers["Facta-Version"])
        assert version == versions.get(stream_id, 0) + 1, f"{stream_id} v{version} out of order"
        versions[stream_id] = version


# -- the subject rule --------------------------------------------------------------------


def test_plain_subjects_are_left_as_they_are() -> None:
    assert (
        nats_subject("facta.tests.nats.Shipped.order-1_€") == "facta.tests.nats.Shipped.order-1_€"
    )


def test_characters_nats_forbids_become_percent_escapes_and_empty_tokens_a_lone_percent() -> None:
    assert nats_subject("facta.Odd type*>.a b\t%") == "facta.Odd%20type%2A%3E.a%20b%09%25"
    assert nats_subject("facta.T..x.") == "facta.T.%.x.%"
    assert nats_subject("facta.T.line\nbreak\x00") == "facta.T.line%0Abreak%00"


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_escaped_subjects_are_valid_and_undo_token_by_token(tokens: list[str]) -> None:
    tokens = [t.replace(".", "") for t in tokens]
    escaped = nats_subject(".".join(tokens)).split(".")
    assert len(escaped) == len(tokens)
    for token in escaped:
        assert token
        assert not any(c.isspace() or c in "*>" for c in token)
    assert ["" if t == "%" else urllib.parse.unquote(t) for t in escaped] == tokens


# -- relaying a store to the shared server -----------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_relay_delivers_each_event_once_in_log_order_with_headers_and_stored_bytes(
    async_store: facta.AsyncEventStore, jetstream: JetStream, readable_async: Readable
) -> None:
    traced = facta.Metadata(correlation_id="c-1", causation_id="k-1")
    await async_store.append(
        "order-1", [NewEvent(Shipped(1), metadata=traced), Shipped(2)], facta.ANY
    )
    await async_store.append("order-2", [Shipped(3, "x" * 2000)], facta.ANY)
    await async_store.append("order-1", [Shipped(4)], facta.ANY)
    await readable_async(async_store)  # a relay publishes up to the readable end
    async with Relay(
        async_store, jetstream.broker(), name="nats", prefix=jetstream.prefix
    ) as relay:
        assert await relay.catch_up() == 4
    rows = await stored_rows(async_store)
    messages = await consume(jetstream.js, jetstream.stream, f"{jetstream.prefix}.>", 4)
    assert_in_order_once(messages, rows)
    first = messages[0]
    assert first.subject == f"{jetstream.prefix}.tests.nats.Shipped.order-1"
    expected = message_for(rows[0], "c-1", "k-1", prefix=jetstream.prefix).headers
    assert first.headers == {
        **expected,
        "Nats-Msg-Id": str(rows[0].event_id),
        "Nats-Expected-Stream": jetstream.stream,
    }
    assert "Facta-Correlation-Id" not in (messages[1].headers or {})


async def test_a_second_relay_s_publications_are_dropped_by_the_duplicate_window(
    async_store: facta.AsyncEventStore, jetstream: JetStream, readable_async: Readable
) -> None:
    await async_store.append("order-1", [Shipped(n) for n in range(1, 4)], facta.ANY)
    await readable_async(async_store)
    async with Relay(async_store, jetstream.broker(), name="one", prefix=jetstream.prefix) as one:
        assert await one.catch_up() == 3
    await async_store.append("order-1", [Shipped(4)], facta.ANY)
    await readable_async(async_store)
    async with Relay(async_store, jetstream.broker(), name="two", prefix=jetstream.prefix) as two:
        assert await two.catch_up() == 4  # acknowledged as duplicates: all but the last
    info = await jetstream.js.stream_info(jetstream.stream)
    assert info.state.messages == 4
    messages = await consume(jetstream.js, jetstream.stream, f"{jetstream.prefix}.>", 4)
    assert_in_order_once(messages, await stored_rows(async_store))


async def test_odd_stream_ids_and_type_names_arrive_under_escaped_subjects(
    async_store: facta.AsyncEventStore, jetstream: JetStream, readable_async: Readable
) -> None:
    odd_ids = ["a b", "x..y", "end.", "star*", "%41", "tab\there", "line\nbreak", "é"]
    for stream_id in odd_ids:
        await async_store.append(stream_id, [Odd(1)], facta.ANY)
    await readable_async(async_store)
    async with Relay(async_store, jetstream.broker(), name="odd", prefix=jetstream.prefix) as relay:
        assert await relay.catch_up() == len(odd_ids)
    messages = await consume(jetstream.js, jetstream.stream, f"{jetstream.prefix}.>", len(odd_ids))
    start = f"{jetstream.prefix}.tests.nats.Odd%20type%2A%3E."
    assert [m.subject for m in messages] == [
        start + s for s in ["a%20b", "x.%.y", "end.%", "star%2A", "%2541", "tab%09here"]
    ] + [start + "line%0Abreak", start + "é"]
    streams = [m.headers["Facta-Stream"] for m in messages if m.headers]
    assert streams == [*odd_ids[:6], "line%0Abreak", "é"]  # a header holds no line break


# -- the broker on its own ---------------------------------------------------------------


def messages_to(subjects: Sequence[str]) -> list[Message]:
    return [
        Message(subject, str(uuid.uuid4()), b"{}", {"Facta-Type": "t"}, facta.Checkpoint(0, n))
        for n, subject in enumerate(subjects, 1)
    ]


async def test_publish_returns_how_many_from_the_first_were_acknowledged(
    jetstream: JetStream,
) -> None:
    ours, nobody_s = f"{jetstream.prefix}.t.s", f"elsewhere_{jetstream.prefix}.t.s"
    async with jetstream.broker() as broker:
        assert await broker.publish("r", messages_to([ours, ours, nobody_s, ours])) == 2
        with pytest.raises(BrokerUnavailable, match="no JetStream stream takes subject"):
            await broker.publish("r", messages_to([nobody_s, ours]))


async def test_open_names_the_server_it_cannot_reach() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    broker = JetStreamBroker(url, connect_timeout=0.5)
    with pytest.raises(BrokerUnavailable, match=f"cannot connect to NATS at {url}"):
        await broker.open()
    await broker.close()
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await broker.publish("r", messages_to(["facta.t.s"]))


async def test_messages_name_the_server_without_its_credentials() -> None:
    port = free_port()
    broker = JetStreamBroker(f"nats://ada:secret@127.0.0.1:{port},tls://t0ken@[::1]:{port}")
    assert broker.where == f"nats://127.0.0.1:{port}, tls://[::1]:{port}"
    with pytest.raises(BrokerUnavailable) as raised:
        await broker.open()
    assert "secret" not in str(raised.value)
    assert "t0ken" not in str(raised.value)


async def test_an_existing_stream_that_does_not_take_the_relay_s_subjects_is_refused(
    jetstream: JetStream,
) -> None:
    await jetstream.js.add_stream(name=jetstream.stream, subjects=[f"{jetstream.prefix}.a.*"])
    with pytest.raises(ConfigurationError, match=r"takes facta_test_\w+\.a\.\*, not .*\.>"):
        await jetstream.broker().open()
    async with jetstream.broker(subjects=[f"{jetstream.prefix}.a.b"]):
        pass  # a narrower subject the stream takes is fine


async def test_without_create_stream_a_missing_stream_is_refused(jetstream: JetStream) -> None:
    with pytest.raises(ConfigurationError, match=f"has no JetStream stream '{jetstream.stream}'"):
        await jetstream.broker(create_stream=False).open()


async def test_the_stream_is_created_with_the_options_given(jetstream: JetStream) -> None:
    async with jetstream.broker(max_age=3600, duplicate_window=30):
        pass
    config = (await jetstream.js.stream_info(jetstream.stream)).config
    assert config.subjects == [f"{jetstream.prefix}.>"]
    assert (config.max_age, config.duplicate_window) == (3600, 30)


# -- private servers: outages and limits -------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateServer:
    """A nats-server with JetStream on a free port and a store dir of its own, for a test
    to stop and start again (same port, same data)."""

    def __init__(self, directory: Path, config: str = "") -> None:
        if not os.access(NATS_SERVER, os.X_OK):
            pytest.skip(f"no nats-server at {NATS_SERVER}")
        self.port, self.directory = free_port(), directory
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.options = ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(directory)]
        if config:
            (directory / "server.conf").write_text(config)
            self.options += ["-c", str(directory / "server.conf")]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, *self.options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.02)
        raise RuntimeError(f"nats-server did not listen on {self.port}")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def pause(self) -> None:
        """SIGSTOP the server and wait until every thread of it has stopped: the kernel stops
        a thread only when it next runs, and on a busy machine a thread still runnable when
        the signal is sent may first answer what it is sent meanwhile."""
        assert self.process is not None
        self.signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.process.pid}/task")
        if not tasks.is_dir():
            return  # no /proc to look at (not Linux)
        deadline = time.monotonic() + 10
        while not all(thread_stopped(task) for task in tasks.iterdir()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.process.pid} did not stop in 10 s")
            time.sleep(0.001)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGCONT)  # a paused server would not see SIGTERM
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def thread_stopped(task: Path) -> bool:
    """Whether the thread ``/proc/<pid>/task/<tid>`` is stopped (or gone)."""
    try:
        stat = (task / "stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


@contextlib.contextmanager
def private_server(config: str = "") -> Iterator[PrivateServer]:
    with tempfile.TemporaryDirectory(prefix="facta-nats-") as directory:
        server = PrivateServer(Path(directory), config)
        server.start()
        try:
            yield server
        finally:
            server.stop()


async def test_a_batch_fails_as_soon_as_the_connection_breaks_not_after_the_ack_timeout() -> None:
    with private_server() as server:
        async with JetStreamBroker(server.url, ack_timeout=30) as broker:
            assert await broker.publish("r", messages_to(["facta.t.s"])) == 1
            server.pause()  # the server takes the messages in, answers nothing
            publishing = asyncio.create_task(broker.publish("r", messages_to(["facta.t.s"] * 9)))
            await asyncio.sleep(0.3)
            assert not publishing.done()
            started = time.monotonic()
            server.signal(signal.SIGKILL)  # the connection breaks
            with pytest.raises(BrokerUnavailable, match="the connection broke before NATS ack"):
                await publishing
            assert time.monotonic() - started < 5


async def test_a_batch_nobody_acknowledges_fails_after_the_ack_timeout() -> None:
    with private_server() as server:
        async with JetStreamBroker(server.url, ack_timeout=0.5) as broker:
            server.pause()
            try:
                with pytest.raises(BrokerUnavailable, match=r"no acknowledgement within 0\.5 s"):
                    await broker.publish("r", messages_to(["facta.t.s"] * 3))
            finally:
                server.signal(signal.SIGCONT)


async def test_an_event_larger_than_the_server_takes_is_refused_naming_it(
    async_store: facta.AsyncEventStore, readable_async: Readable
) -> None:
    await async_store.append("order-1", [Shipped(1, "x" * 5000)], facta.ANY)
    await readable_async(async_store)
    with private_server("max_payload: 4096\n") as server:
        relay = Relay(async_store, JetStreamBroker(server.url), name="big")
        async with relay:
            with pytest.raises(ConfigurationError, match=r"event .* 'order-1' v1\) is \d+ bytes"):
                await relay.catch_up()


async def test_a_relay_waits_out_a_nats_outage_and_loses_or_reorders_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    total, streams = 1500, 30
    async with facta.connect_async(f"sqlite:///{tmp_path / 'outage.db'}") as store:
        with private_server() as server, caplog.at_level(logging.WARNING, "facta.publishing"):
            broker = JetStreamBroker(server.url, connect_timeout=0.5, ack_timeout=2)
            relay = Relay(
                store, broker, name="outage", poll_interval=0.05, max_backoff=0.5, batch_size=50
            )
            async with relay:
                running = asyncio.create_task(relay.run())

                async def write() -> None:
                    for n in range(total):
                        await store.append(f"order-{n % streams}", [Shipped(n)], facta.ANY)
                        if n % 10 == 0:
                            await asyncio.sleep(0.02)

                writing = asyncio.create_task(write())
                assert await until(lambda: relay.published >= total // 4, 60)
                server.stop()
                await asyncio.sleep(0.5)  # acknowledgements sent before the stop come in
                before = relay.published
                await asyncio.sleep(2.5)
                during = relay.published - before  # nothing is acknowledged while it is down
                server.start()
                await writing
                rows = await stored_rows(store)
                assert await until(lambda: relay.checkpoint == rows[-1].checkpoint, 60)
                relay.stop()
                await asyncio.wait_for(running, 30)
            client = await nats.connect(server.url)
            try:
                messages = await consume(client.jetstream(), "FACTA", "facta.>", total)
            finally:
                await client.close()
    assert during == 0
    assert len(rows) == total
    assert_in_order_once(messages, rows)
    warnings = [r.getMessage() for r in caplog.records if r.name == "facta.publishing"]
    assert any("the broker is unavailable" in w and server.url in w for w in warnings), warnings
