"""JetStreamBroker against a three-node JetStream cluster this file starts on loopback: the
relay's stream has three replicas, its leader is killed mid-run, and no event is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import StreamInfo

import facta
from facta.publishing import Relay
from facta.publishing.nats import JetStreamBroker
from facta.records import StoredEvent

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
# How long anything may take: elections and catching up are slow on a busy shared 2-core machine.
PATIENCE = 90.0


@facta.event("tests.nats_cluster.Shipped")
@dataclass(frozen=True)
class Shipped:
    n: int


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (bound all at once, so none comes twice)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


class Node:
    """One nats-server of the cluster: client, route and monitoring ports, a config file, a
    log and a JetStream store dir of its own under ``directory``."""

    def __init__(
        self, name: str, directory: Path, ports: tuple[int, int, int], routes: Sequence[int]
    ) -> None:
        self.name, self.directory = name, directory
        self.port, route_port, self.http_port = ports
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store, self.log = directory / "jetstream", directory / "server.log"
        self.config = directory / "server.conf"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir()
        self.config.write_text(
            f"server_name: {name}\n"
            f'listen: "127.0.0.1:{self.port}"\n'
            f'http: "127.0.0.1:{self.http_port}"\n'
            f"log_file: {json.dumps(str(self.log))}\n"
            f"jetstream {{ store_dir: {json.dumps(str(self.store))} }}\n"
            "cluster {\n"
            "  name: facta_test\n"
            f'  listen: "127.0.0.1:{route_port}"\n'
            f"  routes: [{', '.join(f'nats-route://127.0.0.1:{p}' for p in routes)}]\n"
            "}\n"
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server {self.name} did not listen on {self.port}: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the other nodes, nothing flushed."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None

    def monitor(self, page: str) -> dict[str, Any]:
        """A page of the node's monitoring server (``jsz``, ``connz``); {} if it does not
        answer."""
        url = f"http://127.0.0.1:{self.http_port}/{page}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                found: dict[str, Any] = json.load(response)
                return found
        except (OSError, ValueError):  # URLError is an OSError
            return {}

    def meta(self) -> dict[str, Any]:
        """The node's view of the JetStream meta group."""
        meta: dict[str, Any] = self.monitor("jsz").get("meta_cluster") or {}
        return meta

    def clients(self) -> list[str]:
        """The names of the client connections the node holds ("" for one without a name)."""
        return [c.get("name", "") for c in self.monitor("connz").get("connections") or []]

    def tail(self) -> str:
        """The end of the node's log, for failure messages."""
        with contextlib.suppress(OSError):
            return self.log.read_text()[-2000:]
        return "(no log)"


@dataclass
class Cluster:
    """The three nodes; a killed one stays in ``nodes`` (``alive`` says which are up)."""

    nodes: list[Node]

    def urls(self, nodes: Sequence[Node] | None = None) -> list[str]:
        return [node.url for node in (self.nodes if nodes is None else nodes)]

    def named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def wait_for_meta_leader(self) -> None:
        """Until the live nodes name one meta leader, which sees the other live ones current:
        before that, no stream or consumer can be placed on them."""
        alive = [node for node in self.nodes if node.alive]
        deadline, views = time.monotonic() + PATIENCE, []
        while time.monotonic() < deadline:
            views = [node.meta() for node in alive]
            leaders = {view.get("leader") for view in views}
            if len(leaders) == 1 and (leader := leaders.pop()) in {n.name for n in alive}:
                replicas = self.named(str(leader)).meta().get("replicas") or []
                current = [r for r in replicas if r.get("current")]
                if len(current) >= len(alive) - 1:
                    return
            time.sleep(0.2)
        logs = "\n".join(f"--- {node.name}\n{node.tail()}" for node in self.nodes)
        raise RuntimeError(f"no meta leader within {PATIENCE:g} s: {views}\n{logs}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three nats-server processes with JetStream, routed to each other on loopback; every
    process is killed and every store dir removed afterwards."""
    if not os.access(NATS_SERVER, os.X_OK):
        pytest.skip(f"no nats-server at {NATS_SERVER}")
    ports = free_ports(9)
    routes = ports[3:6]
    nodes = [
        Node(f"n{i + 1}", tmp_path / f"n{i + 1}", (ports[i], ports[i + 3], ports[i + 6]), routes)
        for i in range(3)
    ]
    found = Cluster(nodes)
    try:
        for node in nodes:
            node.start()
        found.wait_for_meta_leader()
        yield found
    finally:
        for node in nodes:
            node.kill()
        for node in nodes:
            shutil.rmtree(node.store, ignore_errors=True)


# The name of the test's own connections, which a node's ``connz`` tells from the relay's.
OBSERVER = "facta-test-observer"


@contextlib.asynccontextmanager
async def observer(urls: Sequence[str]) -> AsyncIterator[NATS]:
    """A connection of the test's own to one of ``urls``, made once and not reconnected."""
    client = await nats.connect(list(urls), name=OBSERVER, allow_reconnect=False, connect_timeout=2)
    try:
        yield client
    finally:
        await client.close()


async def stream_info(urls: Sequence[str], stream: str) -> StreamInfo | None:
    """The stream as the cluster describes it through one of ``urls``; None if it cannot now
    (no connection, no leader yet)."""
    try:
        async with observer(urls) as client:
            return await client.jetstream(timeout=2).stream_info(stream)
    except (OSError, TimeoutError, nats.errors.Error):
        return None


async def until_info(
    urls: Sequence[str], stream: str, condition: Callable[[StreamInfo], object]
) -> StreamInfo:
    """The stream's description once ``condition`` is true of it (asked every 0.2 s)."""
    deadline, info = time.monotonic() + PATIENCE, None
    while time.monotonic() < deadline:
        info = await stream_info(urls, stream)
        if info is not None and condition(info):
            return info
        await asyncio.sleep(0.2)
    raise AssertionError(f"stream {stream} did not get there in {PATIENCE:g} s: {info}")


def leader_of(info: StreamInfo) -> str | None:
    return info.cluster.leader if info.cluster else None


def led_by_another(than: str | None) -> Callable[[StreamInfo], bool]:
    """Whether a stream has a leader, and not ``than``."""
    return lambda info: leader_of(info) not in (None, than)


async def relay_node(cluster: Cluster) -> Node:
    """The node the relay is connected to: the only one holding a connection not the test's."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        holding = [
            node
            for node in cluster.nodes
            if any(name != OBSERVER for name in await asyncio.to_thread(node.clients))
        ]
        if len(holding) == 1:
            return holding[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"the relay's connection was not found in {PATIENCE:g} s")


async def lead_where(cluster: Cluster, stream: str, wanted: Callable[[str], bool]) -> str:
    """Step the stream's leader down until a node whose name is ``wanted`` leads; its name."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        leader = leader_of(await until_info(cluster.urls(), stream, leader_of))
        if leader is not None and wanted(leader):
            return leader
        try:
            async with observer(cluster.urls()) as client:
                subject = f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}"
                reply = await client.request(subject, b"", timeout=5)
            stepped_down = json.loads(reply.data).get("success", False)
        except (OSError, TimeoutError, nats.errors.Error, ValueError):
            stepped_down = False
        if stepped_down:
            await until_info(cluster.urls(), stream, led_by_another(leader))
        else:
            await asyncio.sleep(0.2)
    raise AssertionError(f"no wanted node led stream {stream} within {PATIENCE:g} s")


async def until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` came true within PATIENCE seconds (looked at every 10 ms)."""
    deadline = time.monotonic() + PATIENCE
    for _ in range(int(PATIENCE * 100)):
        if condition() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    return condition()


async def consume(urls: Sequence[str], stream: str, count: int) -> list[Msg]:
    """Every message of ``stream`` through an ordered consumer, once ``count`` arrived, and
    whatever else comes within 0.5 s after them (a duplicate)."""
    async with observer(urls) as client:
        js = client.jetstream(timeout=5)
        deadline = time.monotonic() + PATIENCE
        while True:  # the consumer's placement may wait for the meta group's new leader
            try:
                subscription = await js.subscribe("facta.>", stream=stream, ordered_consumer=True)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        received: list[Msg] = []
        while len(received) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                received.append(await subscription.next_msg(timeout=1))
        with contextlib.suppress(TimeoutError):
            received.append(await subscription.next_msg(timeout=0.5))
        await subscription.unsubscribe()
        return received


def assert_each_once_in_order(messages: Sequence[Msg], rows: Sequence[StoredEvent]) -> None:
    """The stream holds every stored event exactly once (by message id = event id), with its
    stored bytes, each stream's events in version order, and all of them in the log's order."""
    ids = [(m.headers or {}).get("Nats-Msg-Id") for m in messages]
    expected = [str(row.event_id) for row in rows]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    assert set(ids) == set(expected), f"{len(set(expected) - set(ids))} events are missing"
    versions: dict[str, list[int]] = {}
    for message in messages:
        assert message.headers is not None
        stream_id = message.headers["Facta-Stream"]
        versions.setdefault(stream_id, []).append(int(message.headers["Facta-Version"]))
    for stream_id, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"{stream_id} is out of order: {seen}"
    assert ids == expected  # one connection at a time: the log's order too
    assert [m.data for m in messages] == [row.data for row in rows]


@pytest.mark.slow
@pytest.mark.parametrize(
    "relay_on_leader", [True, False], ids=["relay-on-leader", "relay-elsewhere"]
)
async def test_a_relay_loses_nothing_when_the_leader_of_its_three_replica_stream_is_killed(
    cluster: Cluster, relay_on_leader: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the relay's own connection on the killed node (it breaks), or on another node
    (publishing finds no stream leader until the two left elect one)."""
    total, streams = 1500, 30
    killed = asyncio.Event()

    async def write(store: facta.AsyncEventStore) -> None:
        """A third of the events before the kill, the rest after it, a few at a time."""
        for n in range(total):
            if n == total // 3:
                await killed.wait()
            await store.append(f"order-{n % streams}", [Shipped(n)], facta.ANY)
            if n % 10 == 0:
                await asyncio.sleep(0.02)

    async with facta.connect_async(f"sqlite:///{tmp_path / 'cluster.db'}") as store:
        broker = JetStreamBroker(
            cluster.urls(), replicas=3, connect_timeout=1, ack_timeout=2, duplicate_window=300
        )
        relay = Relay(
            store, broker, name="cluster", poll_interval=0.05, max_backoff=0.5, batch_size=50
        )
        with caplog.at_level(logging.WARNING, "facta.publishing"):
            async with relay:  # creates the stream
                placed = await until_info(cluster.urls(), "FACTA", leader_of)
                assert placed.config.num_replicas == 3
                assert placed.cluster is not None
                assert placed.cluster.replicas is not None
                assert len(placed.cluster.replicas) == 2
                relay_at = (await relay_node(cluster)).name

                def wanted(node: str) -> bool:
                    return (node == relay_at) == relay_on_leader

                await lead_where(cluster, "FACTA", wanted)
                running = asyncio.create_task(relay.run())
                writing = asyncio.create_task(write(store))
                try:
                    assert await until(lambda: relay.published >= total // 4)
                    # (again, in case a busy machine made the cluster elect another leader)
                    victim = cluster.named(await lead_where(cluster, "FACTA", wanted))
                    victim.kill()
                    published_at_kill = relay.published
                    killed.set()
                    await asyncio.wait_for(writing, PATIENCE)
                    rows = await store.recorder.read_all(facta.Checkpoint(), None, 10 * total)
                    assert len(rows) == total
                    assert await until(lambda: relay.checkpoint == rows[-1].checkpoint)
                    relay.stop()
                    await asyncio.wait_for(running, PATIENCE)
                finally:
                    for task in (writing, running):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
        survivors = cluster.urls([node for node in cluster.nodes if node.alive])
        await asyncio.to_thread(cluster.wait_for_meta_leader)
        after = await until_info(survivors, "FACTA", led_by_another(victim.name))
        messages = await consume(survivors, "FACTA", total)
    assert relay.published > published_at_kill  # the relay went on after the kill
    assert after.state.messages == total
    assert after.cluster is not None
    assert after.cluster.replicas is not None
    assert [r.current for r in after.cluster.replicas if r.name == victim.name] == [False]
    assert_each_once_in_order(messages, rows)
    warnings = [r.getMessage() for r in caplog.records if r.name == "facta.publishing"]
    assert any("the broker is unavailable" in w for w in warnings), warnings
