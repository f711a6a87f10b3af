"""The global log on PostgreSQL never skips or repeats an event, whatever order writers commit in.

A gate (a trigger waiting on an advisory lock) holds a writer's transaction open after it has
taken its positions, so the tests can commit later writers past it at will.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    from tests.eight_writers import HOT, out_of_order, tail_eight_writers
else:  # tests/ is on the path under pytest
    from eight_writers import HOT, out_of_order, tail_eight_writers

import facta
from facta.appending import ExpectedVersion, StreamAppend
from facta.backends.postgres.recorder import PostgresRecorder
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.events import Checkpoint, NewEvent, RecordedEvent
from facta.testing.events import Happened

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds a reader waits for other sessions' transactions to end
FOREIGN_PATIENCE = 15.0  # the same, while a transaction of another database stays open


class Gate:
    """Holds every append to the stream ``held`` open, after its rows are inserted."""

    def __init__(self, postgres_url: str, schema: str) -> None:
        self.key = random.randrange(2**62)
        # Should the test die, the server drops the holder (and its lock) within two minutes.
        self.holder = psycopg.connect(
            postgres_url, autocommit=True, options="-c idle_session_timeout=120s"
        )
        self.holder.execute(
            f"""
            CREATE FUNCTION "{schema}".gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                -- Should the test die, the held writer gives up within a minute.
                PERFORM set_config('lock_timeout', '60s', true);
                PERFORM pg_advisory_xact_lock_shared({self.key});
                RETURN NULL;
            END $$;
            CREATE TRIGGER gate AFTER INSERT ON "{schema}".facta_events FOR EACH ROW
            WHEN (NEW.stream_id = 'held') EXECUTE FUNCTION "{schema}".gate();
            """
        )

    @contextmanager
    def closed(self) -> Iterator[None]:
        """Appends to ``held`` wait inside this block (opened on the way out, whatever happens)."""
        self.holder.execute("SELECT pg_advisory_lock(%s)", [self.key])
        try:
            yield
        finally:
            self.holder.execute("SELECT pg_advisory_unlock(%s)", [self.key])

    def wait_until_a_writer_waits(self) -> int:
        """The server process of the writer held at the gate, once it waits there."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            waiting = blocked_by(self.holder, self.holder.info.backend_pid)
            if len(waiting) == 1:
                return waiting[0]
            time.sleep(0.005)
        raise AssertionError("the held writer never reached the gate")


@pytest.fixture
def store(postgres_url: str, pg_schema: str) -> Iterator[facta.EventStore]:
    with facta.connect(f"{postgres_url}?schema={pg_schema}", pool_size=8) as opened:
        opened.stream_version("migrate-now")
        yield opened


def pg(store: facta.EventStore) -> PostgresRecorder:
    """The store's PostgreSQL recorder, for its extras (reader lag, waits)."""
    assert isinstance(store.recorder, PostgresRecorder)
    return store.recorder


def readable(store: facta.EventStore) -> facta.EventStore:
    """``store``, once its global log shows every committed event."""
    assert pg(store).wait_until_readable(PATIENCE), pg(store).reader_lag()
    return store


@pytest.fixture
def gate(store: facta.EventStore, postgres_url: str) -> Iterator[Gate]:
    opened = Gate(postgres_url, pg(store).schema)
    yield opened
    opened.holder.close()


def blocked_by(holder: psycopg.Connection[tuple[object, ...]], pid: int) -> list[int]:
    """The server processes waiting for a lock that process ``pid`` holds."""
    cur = holder.execute(
        "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [pid]
    )
    return [int(str(row[0])) for row in cur.fetchall()]


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {PATIENCE:g}s for {what}")
        time.sleep(0.005)


def read_until(store: facta.EventStore, after: Checkpoint, count: int) -> list[RecordedEvent]:
    """The log after ``after`` once it holds ``count`` events (other sessions may lag it)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        events = list(store.read_all(after))
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.01)


def test_a_reader_does_not_pass_a_writer_that_took_its_position_until_it_commits(
    store: facta.EventStore, gate: Gate
) -> None:
    store.append("before", [Happened(0)], facta.ANY)
    start = read_until(store, Checkpoint(), 1)[-1].checkpoint
    with ThreadPoolExecutor(1) as pool:
        with gate.closed():
            held = pool.submit(store.append, "held", [Happened(1)], facta.ANY)
            gate.wait_until_a_writer_waits()
            for n in (10, 11, 12):
                store.append(f"later-{n}", [Happened(n)], facta.ANY)
            while_held_open = list(store.read_all(start))
        held.result()
    assert while_held_open == []
    assert [e.data.n for e in read_until(store, start, 4)] == [1, 10, 11, 12]


def test_reader_lag_counts_the_events_held_back_by_an_open_transaction(
    store: facta.EventStore, gate: Gate
) -> None:
    with ThreadPoolExecutor(1) as pool:
        with gate.closed():
            held = pool.submit(store.append, "held", [Happened(1)], facta.ANY)
            writer = gate.wait_until_a_writer_waits()
            store.append("later", [Happened(2), Happened(3)], facta.ANY)
            lag = pg(store).reader_lag()
        held.result()
    assert lag.held_back >= 2
    database = gate.holder.info.dbname
    if lag.oldest_transaction_pid == writer:  # another session of this database may be older
        assert lag.oldest_transaction_database == database
        assert lag.oldest_transaction_age is not None
        assert f"server process {writer} in database {database!r}, open for" in str(lag)
    assert f"{lag.held_back} committed events are not readable yet" in str(lag)


def test_a_transaction_open_in_another_database_does_not_hold_readers_back(
    store: facta.EventStore, postgres_url: str
) -> None:
    with psycopg.connect(make_conninfo(postgres_url, dbname="postgres")) as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")  # holds a transaction id, never ends
        store.append("s", [Happened(1)], facta.ANY)
        # Other sessions of this database may still hold the log back for a while; the one in
        # the other database, open throughout, must not.
        assert pg(store).wait_until_readable(FOREIGN_PATIENCE), pg(store).reader_lag()
        assert [e.data.n for e in store.read_all()] == [1]
        assert pg(store).reader_lag().oldest_transaction_pid != elsewhere.info.backend_pid


def test_wait_until_readable_waits_for_the_held_writer_and_then_sees_every_commit(
    store: facta.EventStore, gate: Gate
) -> None:
    with ThreadPoolExecutor(1) as pool:
        with gate.closed():
            held = pool.submit(store.append, "held", [Happened(1)], facta.ANY)
            gate.wait_until_a_writer_waits()
            store.append("later", [Happened(2)], facta.ANY)
            readable_while_held = pg(store).wait_until_readable(0.05)
        held.result()
    assert readable_while_held is False
    assert pg(store).wait_until_readable(PATIENCE) is True
    assert [e.data.n for e in store.read_all()] == [1, 2]


def test_a_held_writer_owning_positions_on_both_sides_of_a_later_one_is_read_whole_and_first(
    store: facta.EventStore, gate: Gate
) -> None:
    with ThreadPoolExecutor(1) as pool:
        with gate.closed():
            held = pool.submit(
                store.append_many,
                [
                    StreamAppend("held", [Happened(1)], facta.ANY),
                    StreamAppend("held-too", [Happened(2)], facta.ANY),
                ],
            )
            gate.wait_until_a_writer_waits()
            store.append("later", [Happened(3)], facta.ANY)
        held.result()
    events = read_until(store, Checkpoint(), 3)
    assert [e.data.n for e in events] == [1, 2, 3]
    held_first, held_second, later = (e.position for e in events)
    assert held_first < later < held_second  # positions interleave; the order is by transaction


def test_a_tailing_reader_resumes_from_its_checkpoint_without_skipping_a_late_commit(
    store: facta.EventStore, gate: Gate
) -> None:
    seen: list[RecordedEvent] = []
    checkpoint = Checkpoint()
    with ThreadPoolExecutor(1) as pool:
        with gate.closed():
            held = pool.submit(
                store.append_many,
                [
                    StreamAppend("held", [Happened(1)], facta.ANY),
                    StreamAppend("held-too", [Happened(2)], facta.ANY),
                ],
            )
            gate.wait_until_a_writer_waits()
            store.append("later", [Happened(3)], facta.ANY)
            seen += store.read_all(checkpoint)
            checkpoint = seen[-1].checkpoint if seen else checkpoint
        held.result()
    seen += read_until(store, checkpoint, 3 - len(seen))
    assert [e.data.n for e in seen] == [1, 2, 3]


def test_a_stream_locked_by_a_multi_stream_append_keeps_its_versions_in_log_order(
    store: facta.EventStore, postgres_url: str
) -> None:
    # The multi-stream append claims p, then waits for q (locked by another session) while it
    # holds r's turn. Were it to take its transaction id before waiting for r, a plain append
    # to r could commit version 2 under a younger id, and the log list r@3 before r@2.
    schema = pg(store).schema
    store.append("r", [Happened(1)], facta.ANY)
    store.append("q", [Happened(0)], facta.ANY)
    with psycopg.connect(postgres_url) as locker, ThreadPoolExecutor(2) as pool:
        locker.execute(
            f'SELECT 1 FROM "{schema}".facta_streams WHERE stream_id = %s FOR UPDATE', ["q"]
        )
        many = pool.submit(
            store.append_many,
            [
                StreamAppend("p", [Happened(10)], facta.ANY),
                StreamAppend("q", [Happened(11)], facta.ANY),
                StreamAppend("r", [Happened(12)], ExpectedVersion.ANY),
            ],
        )
        with psycopg.connect(postgres_url, autocommit=True) as watcher:
            wait_for(lambda: blocked_by(watcher, locker.info.backend_pid), "the append to wait")
            (appender,) = blocked_by(watcher, locker.info.backend_pid)
            one = pool.submit(store.append, "r", [Happened(2)], ExpectedVersion.ANY)
            wait_for(lambda: one.done() or blocked_by(watcher, appender), "r's append")
            waiting = blocked_by(watcher, appender)
            xids = [
                row[0]
                for row in watcher.execute(
                    "SELECT backend_xid FROM pg_stat_activity WHERE pid = ANY(%s)", [waiting]
                )
            ]
        locker.rollback()
        many.result()
        one.result()
    assert len(waiting) == 1  # r's append waited for the one that holds r...
    assert xids == [None]  # ...before it had a transaction id
    log = [(e.stream_id, e.version) for e in readable(store).read_all()]
    assert [version for stream, version in log if stream == "r"] == [1, 2, 3]


@pytest.mark.slow
def test_a_tailing_reader_sees_every_event_of_eight_writers_once_and_each_stream_in_order(
    store: facta.EventStore,
) -> None:
    expected, seen = tail_eight_writers(store)
    seen += read_until(store, seen[-1].checkpoint if seen else Checkpoint(), 0)
    readable(store)
    seen += store.read_all(seen[-1].checkpoint if seen else Checkpoint())
    ids = [e.event_id for e in seen]
    counts = {
        "skipped": len(expected - set(ids)),
        "repeated": len(ids) - len(set(ids)),
        "out of stream order": out_of_order(seen),
    }
    assert counts == {"skipped": 0, "repeated": 0, "out of stream order": 0}, counts
    assert len(expected) > 1000  # the writers did write
    assert [e.checkpoint for e in seen] == sorted(e.checkpoint for e in seen)
    versions = {stream: store.stream_version(stream) for stream in HOT}
    for stream, version in versions.items():
        assert [e.version for e in seen if e.stream_id == stream] == list(range(1, version + 1))


async def test_async_writers_and_a_tailing_reader_agree_on_every_event(
    postgres_url: str, pg_schema: str
) -> None:
    url = f"{postgres_url}?schema={pg_schema}"
    async with facta.connect_async(url, pool_size=5) as store:
        recorder = store.recorder
        assert isinstance(recorder, AsyncPostgresRecorder)
        written: set[uuid.UUID] = set()
        seen: list[RecordedEvent] = []

        async def write(number: int) -> None:
            for i in range(30):
                event = NewEvent(Happened(number * 100 + i))
                written.add(event.event_id)
                await store.append(f"stream-{i % 5}", [event], facta.ANY)

        async def tail(writers: asyncio.Future[list[None]]) -> None:
            checkpoint = Checkpoint()
            while not writers.done() or len(seen) < len(written):
                await recorder.wait_for_events(0.05)
                async for event in store.read_all(checkpoint):
                    seen.append(event)
                    checkpoint = event.checkpoint

        writers = asyncio.gather(*(write(n) for n in range(4)))
        await asyncio.wait_for(asyncio.gather(writers, tail(writers)), PATIENCE)
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)) == len(written)
    assert set(ids) == written
