"""``facta relay run`` and ``facta relay status``: the broker chosen by the --to scheme, a
store that must exist, SIGTERM, and a relay SIGKILLed again and again while a writer appends
(JetStream's duplicate window makes every event arrive once, in order)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from click.testing import CliRunner
from nats.aio.msg import Msg
from nats.js import JetStreamContext

import facta
from facta.cli import main
from facta.cli.relay import BROKERS
from facta.events import Checkpoint
from facta.projections import statuses

NATS_URL = os.environ.get("FACTA_TEST_NATS_URL", "nats://127.0.0.1:4222")


@facta.event("tests.cli_relay.Packed")
@dataclass(frozen=True)
class Packed:
    n: int


@dataclass
class JetStream:
    """The shared server, a stream name and a subject prefix no other test uses."""

    js: JetStreamContext
    stream: str
    prefix: str

    def options(self) -> list[str]:
        return ["--to", NATS_URL, "--stream", self.stream, "--prefix", self.prefix]

    async def count(self) -> int:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            return (await self.js.stream_info(self.stream)).state.messages
        return 0


@pytest.fixture
async def jetstream() -> AsyncIterator[JetStream]:
    """A connection to the shared NATS server; the test's stream is deleted afterwards."""
    try:
        client = await nats.connect(NATS_URL, allow_reconnect=False, connect_timeout=2)
    except (OSError, nats.errors.Error) as e:
        pytest.skip(f"no NATS server at {NATS_URL} ({e}); test.sh starts one")
    token = uuid.uuid4().hex[:12]
    found = JetStream(client.jetstream(), f"FACTA_CLI_TEST_{token}", f"facta_cli_test_{token}")
    try:
        yield found
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await found.js.delete_stream(found.stream)
        await client.close()


async def consume(jetstream: JetStream, count: int) -> list[Msg]:
    """The stream's messages through an ordered consumer, once ``count`` arrived (and any
    that come within 0.3 s after them)."""
    subscription = await jetstream.js.subscribe(
        f"{jetstream.prefix}.>", stream=jetstream.stream, ordered_consumer=True
    )
    received: list[Msg] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                received.append(await subscription.next_msg(timeout=1))
        with contextlib.suppress(TimeoutError):
            received.append(await subscription.next_msg(timeout=0.3))
    finally:
        await subscription.unsubscribe()
    return received


def relay_process(url: str, name: str, jetstream: JetStream) -> subprocess.Popen[str]:
    """``facta relay run`` in a process of its own."""
    command = [sys.executable, "-m", "facta", "relay", "run", url, name, *jetstream.options()]
    return subprocess.Popen(
        [*command, "--batch-size", "100", "--poll-interval", "0.05", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop(process: subprocess.Popen[str], how: signal.Signals) -> tuple[str, str]:
    """Send the signal; the process's output once it ended."""
    process.send_signal(how)
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def running(process: subprocess.Popen[str]) -> str:
    """The relay's stderr up to the line that says it runs (all of it, if it ended first)."""
    assert process.stderr is not None
    said = ""
    while line := process.stderr.readline():
        said += line
        if line.startswith("relaying "):
            break
    return said


def readable(store: facta.EventStore) -> None:
    """On PostgreSQL, wait until other sessions' transactions no longer hide events."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:
        assert wait(60.0)


def in_log_order_once(messages: list[Msg], store: facta.EventStore) -> None:
    readable(store)
    rows = store.recorder.read_all(Checkpoint(), None, 1_000_000)
    ids = [m.headers["Nats-Msg-Id"] if m.headers else "" for m in messages]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events arrived twice"
    assert ids == [str(row.event_id) for row in rows]
    assert [m.data for m in messages] == [row.data for row in rows]
    versions: dict[str, int] = {}
    for message in messages:
        assert message.headers is not None
        stream_id, version = message.headers["Facta-Stream"], int(message.headers["Facta-Version"])
        assert version == versions.get(stream_id, 0) + 1, f"{stream_id} v{version} out of order"
        versions[stream_id] = version


async def growing(jetstream: JetStream, seconds: float = 2.0) -> None:
    """Return as soon as the stream holds more messages than before (or after ``seconds``)."""
    before = await jetstream.count()
    for _ in range(int(seconds * 1000)):
        if await jetstream.count() > before:
            return
        await asyncio.sleep(0.0005)


def checkpointed(url: str, name: str) -> int:
    """How many events the log holds up to relay ``name``'s stored checkpoint."""
    with facta.connect(url) as store:
        readable(store)
        found = [s.checkpoint for s in statuses(store) if s.name == name]
        if not found:
            return 0
        rows = store.recorder.read_all(Checkpoint(), None, 1_000_000)
        return sum(1 for row in rows if row.checkpoint <= found[0])


# -- refusals ----------------------------------------------------------------------------


def test_an_unknown_broker_scheme_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    result = CliRunner().invoke(main, ["relay", "run", url, "r", "--to", "kafka://k:9092"])
    assert result.exit_code == 2
    assert "'kafka://k:9092' names no broker facta knows" in result.output
    assert (
        "the broker URL schemes are: amqp://, amqps://, nats://, redis://, rediss://"
        in result.output
    )


def test_stream_is_refused_for_brokers_other_than_nats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    options = ["--to", "redis://127.0.0.1:6379", "--stream", "S"]
    result = CliRunner().invoke(main, ["relay", "run", url, "r", *options])
    assert result.exit_code == 2
    assert "--stream names a JetStream stream: give it with nats:// only" in result.output


def test_a_broker_whose_module_is_missing_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BROKERS, "carrier", ("facta.publishing.carrier_pigeon", "Pigeon"))
    url = f"sqlite:///{tmp_path / 'events.db'}"
    result = CliRunner().invoke(main, ["relay", "run", url, "r", "--to", "carrier://loft"])
    assert result.exit_code == 2
    assert "carrier:// brokers need facta.publishing.carrier_pigeon, which is not" in result.output
    assert "pip install 'facta[carrier_pigeon]'" in result.output


def test_a_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = CliRunner().invoke(main, ["relay", "run", f"sqlite:///{path}", "r", "--to", NATS_URL])
    assert result.exit_code == 2
    assert "is not a facta store" in result.output
    assert not path.exists()


def test_an_unreachable_broker_is_refused_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url):
        pass
    with socket_bound() as port:
        to = f"nats://127.0.0.1:{port}"
        result = CliRunner().invoke(main, ["relay", "run", url, "r", "--to", to])
    assert result.exit_code == 2
    assert f"cannot connect to NATS at {to}" in result.output


@contextlib.contextmanager
def socket_bound() -> Iterator[int]:
    """A port nothing listens on (bound, so nothing else takes it meanwhile)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        yield port


def test_status_says_when_no_relay_has_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url):
        pass
    assert CliRunner().invoke(main, ["relay", "status", url]).output == (
        "no relay has run on this store yet\n"
    )
    result = CliRunner().invoke(main, ["relay", "status", url, "shipping"])
    assert result.exit_code == 2
    assert "no relay named 'shipping' has run on this store" in result.output
    result = CliRunner().invoke(main, ["relay", "status", "shipping"], env={"FACTA_URL": url})
    assert "no relay named 'shipping' has run on this store" in result.output
    result = CliRunner().invoke(main, ["relay", "status"], env={"FACTA_URL": url})
    assert result.output == "no relay has run on this store yet\n"


# -- running -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_relay_run_publishes_until_sigterm_and_status_shows_where_it_stopped(
    url: str, jetstream: JetStream
) -> None:
    with facta.connect(url) as store:
        store.append("box-1", [Packed(1), Packed(2)], facta.ANY)
        store.append("box-2", [Packed(3)], facta.ANY)
    process = relay_process(url, "shipping", jetstream)
    try:
        for _ in range(3000):
            if await jetstream.count() == 3:
                break
            await asyncio.sleep(0.01)
    finally:
        _, err = stop(process, signal.SIGTERM)
    assert process.returncode == 0, err
    assert f"relaying 'shipping' to {NATS_URL} after checkpoint 0" in err
    assert "stopped 'shipping' at checkpoint" in err
    assert "(3 events published)" in err
    with facta.connect(url) as store:
        in_log_order_once(await consume(jetstream, 3), store)
        (found,) = [s for s in statuses(store) if s.name == "shipping"]
    result = CliRunner().invoke(main, ["relay", "status", url, "shipping"])
    assert result.exit_code == 0, result.output
    header, line = result.output.splitlines()
    assert header.split() == ["NAME", "CHECKPOINT", "LAG", "STATE"]
    checkpoint = f"{found.checkpoint[0]}:{found.checkpoint[1]}" if found.checkpoint[0] else "3"
    assert line.split() == ["shipping", checkpoint, "0", "stopped"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_relay_killed_again_and_again_delivers_every_event_once_in_order(
    url: str, jetstream: JetStream
) -> None:
    total, streams, kills, seconds = 3000, 40, 8, 15.0
    with facta.connect(url):
        pass  # the store exists before the relay starts: relay run never creates one
    done = threading.Event()
    # Kills done so far. The writer keeps pace with them: before kill k it writes at most
    # k + 1 shares of ``total`` (of kills + 1), so a busy server slowing the kills down (held
    # back reads) never lets the writer finish before the last kill.
    killed = threading.Condition()
    kills_done = 0

    def write() -> None:  # appends of 1-5 events, spread over ``seconds``
        with facta.connect(url) as store:
            n, started = 0, time.monotonic()
            while n < total:
                stalled = time.monotonic()
                with killed:
                    while n >= total * (kills_done + 1) // (kills + 1) and kills_done < kills:
                        if not killed.wait(120):
                            break
                started += time.monotonic() - stalled  # the pace goes on after a stall
                size = min(random.randint(1, 5), total - n)
                store.append(f"box-{n % streams}", [Packed(n + i) for i in range(size)], facta.ANY)
                n += size
                time.sleep(max(0.0, started + seconds * n / total - time.monotonic()))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    killed_at: list[int] = []
    resent = 0  # events in the stream past the relay's checkpoint when it was killed
    try:
        for _ in range(kills):
            process = relay_process(url, "killed", jetstream)
            await asyncio.sleep(random.uniform(0.4, 1.6))
            await growing(jetstream)  # kill while the relay publishes, not while it sleeps
            stop(process, signal.SIGKILL)
            writing_at_last_kill = not done.is_set()
            killed_at.append(await jetstream.count())
            resent += killed_at[-1] - await asyncio.to_thread(checkpointed, url, "killed")
            with killed:
                kills_done += 1
                killed.notify_all()
        process = relay_process(url, "killed", jetstream)
        said = ""
        try:
            # The killed relays may have published everything already: wait until this one
            # runs (says so, its SIGTERM handler in place) before stopping it.
            said = await asyncio.wait_for(asyncio.to_thread(running, process), 60)
            await asyncio.to_thread(writer.join, 120)
            for _ in range(6000):
                if await jetstream.count() >= total:
                    break
                await asyncio.sleep(0.01)
        finally:
            _, err = stop(process, signal.SIGTERM)
            err = said + err
        assert "relaying 'killed'" in said, err
        assert process.returncode == 0, err
    finally:
        with killed:
            kills_done = kills  # the writer waits for no more kills
            killed.notify_all()
        writer.join(120)
    assert done.is_set()
    assert len(killed_at) == kills
    assert writing_at_last_kill  # every kill fell while the writer was appending
    assert resent > 0  # some kills fell between JetStream's acknowledgement and the checkpoint
    with facta.connect(url) as store:
        in_log_order_once(await consume(jetstream, total), store)
    print(f"\nkilled {kills} times, with {killed_at} events in the stream; {resent} sent again")
