"""Sliced projection workers on PostgreSQL: slices stored at append, leases, fencing,
rebalancing, per-stream order, and worker processes that die mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

if TYPE_CHECKING:
    from tests.sliced_ledger import Deposited, Ledger, contents
else:  # tests/ is on the path under pytest (and of the worker processes)
    from sliced_ledger import Deposited, Ledger, contents

import facta
from facta.backends.postgres.migrations import migrations
from facta.cli import main
from facta.errors import ConfigurationError, ProjectionLocked
from facta.projections import (
    AsyncProjection,
    AsyncSlicedRunner,
    ProjectionRunner,
    SlicedRunner,
    handles,
)
from facta.slices import slice_of, split_slices

pytestmark = pytest.mark.postgres

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
PATIENCE = 60.0  # seconds to wait for what other sessions of a busy server hold back


@pytest.fixture
def url(postgres_url: str, pg_schema: str) -> str:
    return f"{postgres_url}?schema={pg_schema}"


@pytest.fixture
def store(url: str) -> Iterator[facta.EventStore]:
    with facta.connect(url) as opened:
        yield opened


def deposit(store: facta.EventStore, streams: int, events: int, prefix: str = "acct") -> int:
    """``events`` deposits to each of ``streams`` streams; how many were appended."""
    for version in range(events):
        for n in range(streams):
            store.append(f"{prefix}-{n}", [Deposited(n + version)], expected_version=version)
    return streams * events


def worker(store: facta.EventStore, name: str = "ledger", **options: Any) -> SlicedRunner[Any]:
    options = {"ranges": 16, "poll_interval": 0.01, "lease_seconds": 30.0, **options}
    return SlicedRunner(store, Ledger(name), **options)


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {PATIENCE} s for {what}")
        time.sleep(0.02)


def applied(url: str, schema: str, name: str = "ledger") -> int:
    streams, _ = contents(url.split("?")[0], schema, name)
    return sum(row[2] for row in streams)


def settle(store: facta.EventStore) -> None:
    assert store.recorder.wait_until_readable(PATIENCE)  # type: ignore[attr-defined]


def slices_stored(url: str, schema: str) -> dict[str, set[int]]:
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT stream_id, slice FROM {}").format(
                sql.Identifier(schema, "facta_events")
            )
        ).fetchall()
    found: dict[str, set[int]] = {}
    for stream_id, slice_ in rows:
        found.setdefault(stream_id, set()).add(slice_)
    return found


# -- slices, stored at append ------------------------------------------------------------


def test_every_append_path_stores_the_streams_slice(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    store.append("one", [Deposited(1)], facta.NO_STREAM)
    store.append("batch", [Deposited(1), Deposited(2), Deposited(3)], facta.NO_STREAM)
    store.append_many(
        [
            facta.StreamAppend("multi-a", [Deposited(1)], facta.NO_STREAM),
            facta.StreamAppend("multi-b", [Deposited(2), Deposited(3)], facta.NO_STREAM),
        ]
    )
    with psycopg.connect(url.split("?")[0]) as conn, conn.transaction():
        store.append("in-caller", [Deposited(4)], facta.NO_STREAM, connection=conn)
    store.delete_stream("one", 1)  # a lifecycle marker
    found = slices_stored(url, pg_schema)
    assert set(found) == {"one", "batch", "multi-a", "multi-b", "in-caller"}
    assert found == {stream_id: {slice_of(stream_id)} for stream_id in found}


def test_the_migration_fills_the_slice_of_events_stored_before_it(
    postgres_url: str, pg_schema: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        schema = sql.Identifier(pg_schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (version integer PRIMARY KEY, applied_at timestamptz"
                " NOT NULL DEFAULT now())"
            ).format(sql.Identifier(pg_schema, "facta_migrations"))
        )
        for number, template in migrations():
            if number < 6:
                conn.execute(sql.SQL(template).format(schema=schema))
                conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s)").format(
                        sql.Identifier(pg_schema, "facta_migrations")
                    ),
                    (number,),
                )
        for n in range(50):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (transaction_id, stream_id, version, event_id, type,"
                    " schema_version, encoding, data, metadata)"
                    " VALUES (1, %s, 1, gen_random_uuid(), 't', 1, 0, '', '')"
                ).format(sql.Identifier(pg_schema, "facta_events")),
                (f"old-{n}",),
            )
    url = f"{postgres_url}?schema={pg_schema}"
    with facta.connect(url, migrate=True) as store:
        store.stream_version("old-0")  # opens it: migrates
    found = slices_stored(url, pg_schema)
    assert len(found) == 50
    assert found == {stream_id: {slice_of(stream_id)} for stream_id in found}


def test_read_all_with_slices_returns_only_their_streams_in_log_order(
    store: facta.EventStore,
) -> None:
    deposit(store, 40, 3)
    settle(store)
    wanted = set(range(0, 512))
    events = list(store.read_all(slices=wanted, batch_size=7))
    everything = list(store.read_all())
    assert events == [e for e in everything if slice_of(e.stream_id) in wanted]
    assert 0 < len(events) < len(everything)


def test_other_backends_refuse_sliced_work_saying_why(tmp_path: Path) -> None:
    for url in ("memory://", f"sqlite:///{tmp_path / 'events.db'}"):
        with facta.connect(url) as store:
            with pytest.raises(ConfigurationError, match="cannot share a projection"):
                SlicedRunner(store, Ledger())
            with pytest.raises(ConfigurationError, match="cannot share a projection"):
                list(store.read_all(slices=[1]))


# -- one worker, leases, fencing -------------------------------------------------------------


def test_a_worker_alone_takes_every_range_and_applies_every_event_once(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    count = deposit(store, 30, 4)
    settle(store)
    with worker(store) as runner:
        assert [h.range for h in runner.held] == split_slices(16)
        assert runner.catch_up() == count
        status = runner.status()
    streams, problems = contents(url.split("?")[0], pg_schema, "ledger")
    assert problems == []
    assert [(s[0], s[1], s[2]) for s in streams] == sorted((f"acct-{n}", 4, 4) for n in range(30))
    assert status.workers == [runner.worker]
    assert {r.owner for r in status.ranges} == {runner.worker}
    assert status.lag == 0
    assert status.state == "running"


def test_a_second_worker_gets_its_share_when_the_first_gives_back_the_rest(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    count = deposit(store, 30, 2)
    settle(store)
    with worker(store) as first, worker(store) as second:
        assert len(first.held) == 16
        assert second.held == []
        time.sleep(0.02)
        first.catch_up()  # balances first: two workers now, a share of 8
        second.catch_up()
        assert len(first.held) == len(second.held) == 8
        assert not {h.range for h in first.held} & {h.range for h in second.held}
        first.catch_up()
        second.catch_up()
    assert applied(url, pg_schema) == count
    assert contents(url.split("?")[0], pg_schema, "ledger")[1] == []


def test_a_worker_that_stops_gives_its_ranges_to_the_others_at_once(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    with worker(store) as first:
        with worker(store) as second:
            time.sleep(0.02)
            first.catch_up()
            second.catch_up()
            assert len(second.held) == 8
        count = deposit(store, 20, 2)
        settle(store)
        time.sleep(0.02)
        first.catch_up()
        assert len(first.held) == 16
    assert applied(url, pg_schema) == count


def test_a_dead_workers_ranges_are_taken_over_once_its_leases_expire(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    count = deposit(store, 20, 2) + 20
    settle(store)
    # The survivor's leases outlast any wait below (a busy server can hold readers back for
    # seconds): only the dead worker's run out.
    with worker(store, lease_seconds=30.0, poll_interval=0.1) as survivor:
        dead = worker(store, lease_seconds=0.5, poll_interval=0.1)
        dead.open()
        time.sleep(0.15)
        survivor.catch_up()  # gives back half
        dead.catch_up()  # takes it, then never renews again: as good as dead
        dead_ranges = {h.range for h in dead.held}
        assert len(survivor.held) == 8
        assert len(dead_ranges) == 8
        time.sleep(0.7)  # its heartbeat and its leases expire
        survivor.catch_up()
        assert len(survivor.held) == 16
        tokens = {h.range: h.token for h in survivor.held}
        assert all(tokens[r] == 3 for r in dead_ranges)  # each change of hands: a new token
        deposit(store, 20, 1, prefix="late")
        settle(store)
        assert dead.catch_up() == 0  # it comes back: what it held is no longer its
        assert dead.held == []
        # Back, it joined the workers again, and the survivor gives it half at its next
        # balance; once it leaves, the survivor takes every range back and applies the rest.
        dead.close()
        until(lambda: survivor.catch_up() >= 0 and applied(url, pg_schema) == count, "the rest")
        assert len(survivor.held) == 16
    assert applied(url, pg_schema) == count
    assert contents(url.split("?")[0], pg_schema, "ledger")[1] == []


def test_a_worker_whose_range_was_taken_over_has_its_commit_refused(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    count = deposit(store, 30, 2)
    settle(store)
    stale = worker(store, poll_interval=5.0, lease_seconds=30.0)  # it balances rarely
    with stale:
        assert len(stale.held) == 16
        with psycopg.connect(url.split("?")[0], autocommit=True) as conn:  # its leases run out
            conn.execute(
                sql.SQL("UPDATE {} SET expires_at = now() - interval '1 s'").format(
                    sql.Identifier(pg_schema, "facta_slice_leases")
                )
            )
        with worker(store) as thief:  # takes its share (8) of the expired ranges
            taken = {h.range for h in thief.held}
            assert len(taken) == 8
            done = stale.catch_up()  # refused for the lost ranges; goes on with what it keeps
            assert {h.range for h in stale.held}.isdisjoint(taken)
            assert len(stale.held) == 8
            done += thief.catch_up()
    assert done == count
    assert applied(url, pg_schema) == count
    assert contents(url.split("?")[0], pg_schema, "ledger")[1] == []


def test_events_of_a_stream_arrive_in_order_while_writers_append(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    stop = threading.Event()
    appended = [0]

    def write(prefix: str) -> None:
        version = 0
        while not stop.is_set() and version < 60:
            for n in range(5):
                store.append(f"{prefix}-{n}", [Deposited(1)], expected_version=version)
                appended[0] += 1
            version += 1

    writers = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(3)]
    with worker(store) as first, worker(store) as second:
        for thread in writers:
            thread.start()
        while any(thread.is_alive() for thread in writers):
            first.catch_up()
            second.catch_up()
        settle(store)
        first.catch_up()
        second.catch_up()
        first.catch_up()
    assert applied(url, pg_schema) == appended[0] == 900
    assert contents(url.split("?")[0], pg_schema, "ledger")[1] == []


def test_a_rebuild_resets_every_range_while_another_worker_runs(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    count = deposit(store, 30, 3)
    settle(store)
    with worker(store) as first, worker(store) as second:
        time.sleep(0.02)
        first.catch_up()
        second.catch_up()
        thread = threading.Thread(target=second.run)
        thread.start()
        try:
            first.rebuild()
            until(lambda: applied(url, pg_schema) == count, "the other worker to replay its ranges")
        finally:
            second.stop()
            thread.join()
        status = first.status()
    assert all(r.lag == 0 for r in status.ranges)
    streams, problems = contents(url.split("?")[0], pg_schema, "ledger")
    assert problems == []
    assert sum(s[2] for s in streams) == count


def test_a_plain_runner_and_sliced_workers_of_one_projection_exclude_each_other(
    store: facta.EventStore,
) -> None:
    with worker(store), pytest.raises(ProjectionLocked), ProjectionRunner(store, Ledger()):
        pass
    with ProjectionRunner(store, Ledger()), pytest.raises(ProjectionLocked), worker(store):
        pass


def test_a_worker_with_another_number_of_ranges_is_refused(store: facta.EventStore) -> None:
    with (
        worker(store),
        pytest.raises(ConfigurationError, match="split into 16 ranges"),
        worker(store, ranges=8),
    ):
        pass


def test_the_cli_status_shows_each_range(store: facta.EventStore, url: str) -> None:
    deposit(store, 5, 1)
    settle(store)
    with worker(store) as runner:
        runner.catch_up()
        result = CliRunner().invoke(main, ["projections", "status", url])
        listed = CliRunner().invoke(main, ["projections", url])
    assert result.exit_code == 0, result.output
    assert "ledger" in result.output
    assert "0-63" in result.output
    assert runner.worker in result.output
    assert listed.exit_code == 0, listed.output
    assert "ledger: sliced, running, 1 workers, lag 0" in listed.output


# -- worker processes ------------------------------------------------------------------------


def start_worker(url: str, log: Path, *options: str) -> subprocess.Popen[bytes]:
    """``facta projections run URL ledger --sliced`` in a process of its own; its stderr
    goes to ``log``."""
    command = [sys.executable, "-m", "facta", "projections", "run", url, "ledger"]
    command += ["-p", "sliced_ledger:Ledger", "--poll-interval", "0.1", "--batch-size", "50"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    with log.open("ab") as stderr:
        return subprocess.Popen([*command, *options], env=env, stderr=stderr)


def sliced_status(store: facta.EventStore) -> Any:
    found = store.recorder.sliced_statuses()
    return found[0] if found else None


def stop(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(PATIENCE))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


@pytest.mark.slow
def test_three_worker_processes_one_killed_mid_run_equal_a_single_worker_rebuild(
    store: facta.EventStore, url: str, pg_schema: str, tmp_path: Path
) -> None:
    plain_url = url.split("?")[0]
    log = tmp_path / "workers.log"
    workers = [start_worker(url, log, "--sliced", "--lease-seconds", "2") for _ in range(3)]
    writers_done = threading.Event()
    appended = [0]

    def write(prefix: str) -> None:
        for version in range(30):
            for n in range(20):
                store.append(f"{prefix}-{n}", [Deposited(version)], expected_version=version)
                appended[0] += 1

    writers = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(3)]
    try:
        until(
            lambda: (
                (s := sliced_status(store)) is not None
                and len({r.owner for r in s.ranges if r.owner in s.workers}) == 3
            ),
            "three workers to hold ranges",
        )
        for thread in writers:
            thread.start()
        until(lambda: applied(url, pg_schema) >= 300, "the workers to apply some events")
        victim = workers[0]
        name = next(w for w in sliced_status(store).workers if f":{victim.pid}:" in w)
        lost = {r.first: r.token for r in sliced_status(store).ranges if r.owner == name}
        assert lost
        victim.send_signal(signal.SIGKILL)  # mid-run, its batch in hand
        victim.wait()
        for thread in writers:
            thread.join()
        writers_done.set()
        settle(store)
        until(lambda: applied(url, pg_schema) == appended[0] == 1800, "every event applied")
        until(
            lambda: all(r.owner not in (None, name) for r in sliced_status(store).ranges),
            "the dead worker's ranges to be taken over",
        )
        taken = sliced_status(store)
        assert name not in taken.workers
        assert all(r.token > lost[r.first] for r in taken.ranges if r.first in lost)
        assert taken.lag == 0
    finally:
        codes = stop(workers)
    assert codes[0] == -signal.SIGKILL
    assert codes[1:] == [0, 0], log.read_text()
    with ProjectionRunner(store, Ledger("ledger_single")) as single:
        assert single.catch_up() == 1800
    sliced, problems = contents(plain_url, pg_schema, "ledger")
    assert problems == []
    assert (sliced, problems) == contents(plain_url, pg_schema, "ledger_single")


@pytest.mark.slow
def test_the_cli_starts_n_worker_processes_that_share_the_work(
    store: facta.EventStore, url: str, pg_schema: str, tmp_path: Path
) -> None:
    count = deposit(store, 40, 3)
    settle(store)
    log = tmp_path / "workers.log"
    parent = start_worker(url, log, "--workers", "2")
    try:
        until(
            lambda: (
                (s := sliced_status(store)) is not None
                and len(s.workers) == 2
                and len({r.owner for r in s.ranges}) == 2
            ),
            "two workers sharing the ranges",
        )
        until(lambda: applied(url, pg_schema) == count, "every event applied")
    finally:
        (code,) = stop([parent])
    assert code == 0, log.read_text()
    assert sliced_status(store).workers == []
    assert contents(url.split("?")[0], pg_schema, "ledger")[1] == []


class AsyncCounts(AsyncProjection[psycopg.AsyncConnection[Any]]):
    name = "async_counts"

    async def setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS async_counts (stream_id text PRIMARY KEY, version bigint)"
        )

    @handles(Deposited)
    async def deposited(
        self, event: facta.RecordedEvent[Deposited], conn: psycopg.AsyncConnection[Any]
    ) -> None:
        await conn.execute(
            "INSERT INTO async_counts VALUES (%s, %s) ON CONFLICT (stream_id) DO UPDATE"
            " SET version = excluded.version WHERE async_counts.version = excluded.version - 1",
            (event.stream_id, event.version),
        )


async def test_async_workers_share_the_ranges_and_apply_every_event(
    url: str, pg_schema: str
) -> None:
    async with facta.connect_async(url) as store:
        for n in range(20):
            await store.append(f"acct-{n}", [Deposited(1), Deposited(2)], facta.NO_STREAM)
        assert await store.recorder.wait_until_readable(PATIENCE)  # type: ignore[attr-defined]
        options: dict[str, Any] = {"ranges": 8, "poll_interval": 0.01}
        async with (
            AsyncSlicedRunner(store, AsyncCounts(), **options) as first,
            AsyncSlicedRunner(store, AsyncCounts(), **options) as second,
        ):
            await asyncio.sleep(0.02)
            done = await first.catch_up()
            done += await second.catch_up()
            done += await first.catch_up()
            assert len(first.held) == len(second.held) == 4
            assert done == 40
            assert (await first.status()).lag == 0
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT count(*), min(version) FROM {}").format(
                sql.Identifier(pg_schema, "async_counts")
            )
        ).fetchone()
    assert rows == (20, 2)


def test_the_cli_rebuilds_a_sliced_projection(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    count = deposit(store, 10, 2)
    settle(store)
    with worker(store) as runner:
        runner.catch_up()
    spec = ["-p", "sliced_ledger:Ledger", "--sliced"]  # tests/ is on the path under pytest
    result = CliRunner().invoke(main, ["projections", "rebuild", url, "ledger", *spec])
    assert result.exit_code == 0, result.output
    assert "reset its 16 ranges, replayed 20 events of the 16 it holds" in result.output
    assert applied(url, pg_schema) == count
    assert all(r.owner is None and r.lag == 0 for r in sliced_status(store).ranges)


def test_a_worker_never_skips_an_event_held_back_by_an_open_transaction(
    store: facta.EventStore, url: str, pg_schema: str
) -> None:
    with worker(store) as runner, psycopg.connect(url.split("?")[0]) as conn:
        with conn.transaction():
            store.append("early", [Deposited(1)], facta.NO_STREAM, connection=conn)
            store.append("late", [Deposited(2)], facta.NO_STREAM)  # commits first
            assert runner.catch_up() == 0  # "late" waits behind the open transaction
        settle(store)
        assert runner.catch_up() == 2
    streams, problems = contents(url.split("?")[0], pg_schema, "ledger")
    assert [s[:3] for s in streams] == [("early", 1, 1), ("late", 1, 1)]
    assert problems == []
