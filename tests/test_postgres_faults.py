"""The PostgreSQL store when its server goes away: killed sessions, restarts, a server down.

Each test runs against a private PostgreSQL cluster (``initdb`` and ``pg_ctl`` of the installed
server, run as the ``postgres`` user when the tests run as root), on a free port in a temporary
directory, so the shared server is never stopped. The cluster is made once for the module and
removed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

import facta
from facta.appending import StreamAppend
from facta.backends.postgres import PoolExhausted
from facta.backends.postgres.recorder import PostgresRecorder
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.errors import StoreError
from facta.projections import Projection, ProjectionRunner, handles
from facta.testing.clusters import Cluster, ClustersUnavailable, private_cluster
from facta.testing.events import Happened

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RECOVERY = 2.0  # seconds within which service must be back once the server is


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        with private_cluster(max_connections="40", shared_buffers="16MB") as made:
            yield made
    except ClustersUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """The cluster, started again if a test left it stopped."""
    try:
        with psycopg.connect(cluster.url(), connect_timeout=2):
            pass
    except psycopg.OperationalError:
        cluster.start()
    return cluster


@pytest.fixture
def url(running: Cluster) -> str:
    return running.url(f"faults_{uuid.uuid4().hex[:12]}")


def pg(store: facta.EventStore) -> PostgresRecorder:
    assert isinstance(store.recorder, PostgresRecorder)
    return store.recorder


def fill_the_pool(store: facta.EventStore, size: int) -> None:
    """Make the pool open ``size`` connections (all in use at once), then give them back."""
    recorder = pg(store)
    with ThreadPoolExecutor(size) as pool:
        start = threading.Barrier(size)

        def hold() -> None:
            with recorder.connection():
                start.wait(timeout=30)

        list(pool.map(lambda _: hold(), range(size)))
    assert recorder.pool.get_stats()["pool_size"] == size


# -- dead pooled connections ---------------------------------------------------------------------


def test_appends_after_the_pools_sessions_were_killed_succeed(running: Cluster, url: str) -> None:
    with facta.connect(url, pool_size=4) as store:
        store.append("s", [Happened(0)], facta.ANY)
        fill_the_pool(store, 4)
        assert running.terminate_sessions() >= 4
        for n in range(1, 9):
            assert store.append("s", [Happened(n)], facta.ANY).version == n + 1
        assert [e.data.n for e in store.read_stream("s")] == list(range(9))


def test_reads_after_the_pools_sessions_were_killed_succeed(running: Cluster, url: str) -> None:
    with facta.connect(url, pool_size=3) as store:
        store.append("s", [Happened(0)], facta.ANY)
        fill_the_pool(store, 3)
        running.terminate_sessions()
        assert [store.stream_version("s") for _ in range(6)] == [1] * 6


async def test_async_appends_after_the_pools_sessions_were_killed_succeed(
    running: Cluster, url: str
) -> None:
    async with facta.connect_async(url, pool_size=2) as store:
        await store.append("s", [Happened(0)], facta.ANY)
        recorder = store.recorder
        assert isinstance(recorder, AsyncPostgresRecorder)
        async with recorder.connection(), recorder.connection():
            pass
        running.terminate_sessions()
        for n in range(1, 5):
            assert (await store.append("s", [Happened(n)], facta.ANY)).version == n + 1


def test_service_resumes_at_once_after_the_server_restarts(running: Cluster, url: str) -> None:
    with facta.connect(url, pool_size=4) as store:
        store.append("s", [Happened(0)], facta.ANY)
        fill_the_pool(store, 4)
        running.restart()
        started = time.monotonic()
        assert store.append("s", [Happened(1)], facta.ANY).version == 2
        assert time.monotonic() - started < RECOVERY
        assert store.stream_version("s") == 2


def test_a_caller_waiting_while_the_server_is_down_gets_through_soon_after_it_returns(
    running: Cluster, url: str
) -> None:
    with facta.connect(url, pool_size=2, pool_timeout=30) as store, ThreadPoolExecutor(1) as pool:
        store.append("s", [Happened(0)], facta.ANY)
        running.stop()
        append = pool.submit(store.append, "s", [Happened(1)], facta.ANY)
        time.sleep(4)  # long enough for the pool's reconnection attempts to back off
        assert not append.done()
        running.start()
        back = time.monotonic()
        assert append.result(timeout=30).version == 2
        assert time.monotonic() - back < RECOVERY


def test_a_call_while_the_server_is_down_fails_within_the_pool_timeout(
    running: Cluster, url: str
) -> None:
    with facta.connect(url, pool_size=2, pool_timeout=1) as store:
        store.append("s", [Happened(0)], facta.ANY)
        running.stop()
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            store.append("s", [Happened(1)], facta.ANY)
        assert time.monotonic() - started < 1 + RECOVERY
        assert isinstance(raised.value, PoolExhausted)
        assert "is the server reachable?" in str(raised.value)
        running.start()
        assert store.append("s", [Happened(2)], facta.ANY).version == 2


# -- projection runners --------------------------------------------------------------------------


class Totals(Projection[psycopg.Connection[Any]]):
    """Counts each stream's events, recording every position applied (to see repeats)."""

    name = "totals"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS applied (position bigint NOT NULL)")

    @handles(Happened)
    def counted(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute("INSERT INTO applied VALUES (%s)", (event.position,))


def applied(url: str) -> list[int]:
    """The positions the projection applied, in the order applied; [] while unreachable."""
    conninfo, schema = url.split("?schema=")
    try:
        with psycopg.connect(conninfo, connect_timeout=2) as conn:
            cur = conn.execute(f'SELECT position FROM "{schema}".applied ORDER BY position')
            return [row[0] for row in cur.fetchall()]
    except psycopg.Error:
        return []


def wait_for_applied(url: str, count: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    done = applied(url)
    while len(done) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        done = applied(url)
    return done


@contextlib.contextmanager
def running_in_a_thread(runner: ProjectionRunner[Any]) -> Iterator[Future[None]]:
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(runner.run)
        try:
            yield run
        finally:
            runner.stop()
            run.result(timeout=60)


@pytest.mark.parametrize("fault", ["restart", "terminate_sessions"])
def test_a_running_projection_catches_up_by_itself_after_the_server_fails(
    running: Cluster, url: str, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="facta.projections")
    with (
        facta.connect(url, pool_size=3, pool_timeout=10) as store,
        ProjectionRunner(store, Totals(), poll_interval=0.1) as runner,
        running_in_a_thread(runner) as run,
    ):
        store.append_many([StreamAppend(f"s{n}", [Happened(n)], facta.ANY) for n in range(10)])
        assert len(wait_for_applied(url, 10, 30)) == 10
        getattr(running, fault)()
        back = time.monotonic()
        store.append_many([StreamAppend(f"t{n}", [Happened(n)], facta.ANY) for n in range(10)])
        done = wait_for_applied(url, 20, 30)
        caught_up = time.monotonic() - back
        assert not run.done()
    assert sorted(done) == sorted(set(done)) == list(range(1, 21))  # each once
    assert caught_up < 10
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries
    assert "projection 'totals': the store failed (" in retries[0]
    assert any(
        "projection 'totals' resumed at checkpoint" in r.getMessage() for r in caplog.records
    )
