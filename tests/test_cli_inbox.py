"""``facta inbox run`` and ``facta inbox status``: an inbox process fed by a relay through Redis,
stopped by SIGTERM; what it holds, shown; the source chosen by the --from scheme, and the
options each one takes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

import facta
from facta.cli import main
from facta.publishing import Relay
from facta.publishing.redis import RedisBroker

REDIS_URL = os.environ.get("FACTA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# The application's module, as the inbox's service would have it: its event classes and the
# projection the inbox feeds (a SQLite table).
MODEL = """
import sqlite3
from dataclasses import dataclass

import facta
from facta.projections import Projection, handles


@facta.event("tests.cli_inbox.Ordered")
@dataclass(frozen=True)
class Ordered:
    item: str


class Orders(Projection[sqlite3.Connection]):
    name = "orders"

    def setup(self, db):
        db.execute("CREATE TABLE IF NOT EXISTS orders (stream TEXT, version INT, item TEXT)")

    @handles(Ordered)
    def ordered(self, event, db):
        if event.data.item == "poison":
            raise ValueError("no poison here")
        db.execute(
            "INSERT INTO orders VALUES (?, ?, ?)",
            (event.stream_id, event.version, event.data.item),
        )
"""


@facta.event("tests.cli_inbox.Ordered")
@dataclass(frozen=True)
class Ordered:
    item: str


@pytest.fixture
def prefix() -> Iterator[str]:
    """Redis keys of the test's own, deleted afterwards."""
    try:
        with redis.Redis.from_url(REDIS_URL) as client:
            client.ping()
    except redis.exceptions.ConnectionError as e:
        pytest.skip(f"no Redis at {REDIS_URL} ({e}); test.sh starts one")
    name = f"facta-cli-test-{uuid.uuid4().hex[:12]}"
    yield name
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{name}:*"):
            client.delete(key)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """The receiving service's folder: its module, and its store (made by `facta migrate`)."""
    (tmp_path / "shop_model.py").write_text(MODEL)
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    assert CliRunner().invoke(main, ["migrate", url]).exit_code == 0
    return tmp_path


def publish(tmp_path: Path, prefix: str, *items: str, stream: str = "order-1") -> None:
    """Append the items to the sending service's store and relay them to Redis."""

    async def go() -> None:
        async with facta.connect_async(f"sqlite:///{tmp_path / 'sender.db'}") as store:
            await store.append(stream, [Ordered(item) for item in items], facta.ANY)
            async with Relay(store, RedisBroker(REDIS_URL, prefix), name="relay") as relay:
                await relay.catch_up()

    asyncio.run(go())


def orders(service: Path) -> list[tuple[str, int, str]]:
    with closing(sqlite3.connect(service / "orders.db")) as db:
        try:
            return [tuple(row) for row in db.execute("SELECT * FROM orders").fetchall()]
        except sqlite3.OperationalError:
            return []


def inbox_process(service: Path, prefix: str, *options: str) -> subprocess.Popen[str]:
    url = f"sqlite:///{service / 'orders.db'}"
    command = [sys.executable, "-m", "facta", "inbox", "run", url, "orders"]
    command += ["--from", REDIS_URL, "--prefix", prefix, "--projection", "shop_model:Orders"]
    return subprocess.Popen(
        [*command, "--poll-interval", "0.05", *options],
        cwd=service,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def until(condition: object, seconds: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_inbox_run_applies_what_comes_until_sigterm_and_status_shows_what_it_holds(
    service: Path, prefix: str
) -> None:
    publish(service, prefix, "tea", "cake")
    process = inbox_process(service, prefix, "--dead-letter")
    try:
        until(lambda: len(orders(service)) == 2)
        publish(service, prefix, "poison", "jam")
        until(lambda: len(orders(service)) == 3)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert orders(service) == [("order-1", 1, "tea"), ("order-1", 2, "cake"), ("order-1", 4, "jam")]
    assert f"receiving 'orders' from {REDIS_URL}" in err
    assert "inbox 'orders': event 'tests.cli_inbox.Ordered'" in err  # the dead letter, logged
    assert (
        "stopped 'orders': 3 events applied, 0 duplicates dropped, 0 parked, 1 sent to the "
        "dead letters"
    ) in err
    url = f"sqlite:///{service / 'orders.db'}"
    result = CliRunner().invoke(main, ["inbox", "status", url, "orders"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["inbox 'orders': stopped", "parked: 0", "dead letters: 1"]
    assert lines[3].startswith("  order-1 v3 (event ")
    assert lines[3].endswith(": ValueError: no poison here")


def test_inbox_status_shows_parked_messages_and_a_failed_inbox_s_error(
    service: Path, prefix: str
) -> None:
    publish(service, prefix, "a", "b", stream="order-2")
    with redis.Redis.from_url(REDIS_URL) as client:  # its first event never reached Redis
        first = client.xrange(f"{prefix}:events", count=1)[0][0]
        client.xdel(f"{prefix}:events", first)
    publish(service, prefix, "poison", stream="order-3")
    process = inbox_process(service, prefix)  # stops at the poison: no --dead-letter
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "Error: inbox 'orders' stopped at event 'tests.cli_inbox.Ordered'" in err
    assert "(stream 'order-3' version 1): ValueError: no poison here" in err
    url = f"sqlite:///{service / 'orders.db'}"
    result = CliRunner().invoke(main, ["inbox", "status", url, "orders"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "inbox 'orders': failed"
    assert lines[1].startswith("  inbox 'orders' stopped at event 'tests.cli_inbox.Ordered'")
    assert lines[2] == "parked: 1 (waiting for earlier versions)"
    assert lines[3].startswith("  order-2 v2 (event ")
    assert lines[4] == "dead letters: 0"
    assert orders(service) == []


def test_a_source_is_chosen_by_scheme_and_takes_only_its_own_options(service: Path) -> None:
    url = f"sqlite:///{service / 'orders.db'}"
    base = ["inbox", "run", url, "orders", "--projection", "shop_model:Orders"]
    result = CliRunner().invoke(main, [*base, "--from", "kafka://k:9092"])
    assert result.exit_code == 2
    assert "'kafka://k:9092' names no broker facta knows" in result.output
    assert "the schemes are: amqp://, amqps://, nats://, redis://, rediss://" in result.output
    result = CliRunner().invoke(main, [*base, "--from", "redis://h:6379", "--stream", "S"])
    assert result.exit_code == 2
    assert "--stream does not apply to redis:// sources; they take --group, --prefix" in (
        result.output
    )
    result = CliRunner().invoke(main, [*base, "--from", "amqp://u:pw@h", "--group", "g"])
    assert "--group does not apply to amqp:// sources; they take --prefix, --queue" in (
        result.output
    )


def test_the_projection_must_be_one_and_the_store_must_exist(
    service: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (service / "other_model.py").write_text(
        "from facta.projections import Projection\n\n\n"
        "class Nothing(Projection[None]):\n    name = 'nothing'\n\n\nNOT_ONE = 3\n"
    )
    monkeypatch.chdir(service)
    url = f"sqlite:///{service / 'orders.db'}"
    source = ["--from", REDIS_URL]
    result = CliRunner().invoke(
        main, ["inbox", "run", url, "nothing", *source, "--projection", "other_model:NOT_ONE"]
    )
    assert result.exit_code == 2
    assert "'other_model:NOT_ONE' is a int, not a facta.projections Projection" in result.output
    missing = f"sqlite:///{service / 'nowhere.db'}"
    result = CliRunner().invoke(
        main, ["inbox", "run", missing, "nothing", *source, "--projection", "other_model:Nothing"]
    )
    assert result.exit_code == 2
    assert "is not a facta store" in result.output
    assert not (service / "nowhere.db").exists()
    result = CliRunner().invoke(main, ["inbox", "status", url, "nobody"])
    assert result.exit_code == 2
    assert "no inbox named 'nobody' has run on this store" in result.output
