"""The PostgreSQL store when things go wrong: exhausted pools, lost connections, races."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager

import psycopg
import pytest

import facta
from facta.appending import ExpectedVersion, StreamAppend
from facta.backends.postgres import LockTimeout, PoolExhausted
from facta.backends.postgres.queries import stream_lock_class
from facta.backends.postgres.recorder import PostgresRecorder
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.errors import ConcurrencyError, DuplicateEventId, StoreError
from facta.events import Checkpoint, NewEvent
from facta.testing.events import Happened

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds a read waits for other sessions' transactions to end


@pytest.fixture
def url(postgres_url: str, pg_schema: str) -> str:
    return f"{postgres_url}?schema={pg_schema}"


@pytest.fixture
def store(url: str) -> Iterator[facta.EventStore]:
    with facta.connect(url, pool_size=4) as opened:
        yield opened


@pytest.fixture
async def async_store(url: str) -> AsyncIterator[facta.AsyncEventStore]:
    async with facta.connect_async(url, pool_size=1, pool_timeout=0.2) as opened:
        yield opened


def pg(store: facta.EventStore) -> PostgresRecorder:
    """The store's PostgreSQL recorder, for its extras (pool, connection, waits)."""
    assert isinstance(store.recorder, PostgresRecorder)
    return store.recorder


def async_pg(store: facta.AsyncEventStore) -> AsyncPostgresRecorder:
    assert isinstance(store.recorder, AsyncPostgresRecorder)
    return store.recorder


def readable(store: facta.EventStore) -> facta.EventStore:
    """``store``, once its global log shows every committed event (see wait_until_readable)."""
    assert pg(store).wait_until_readable(PATIENCE), pg(store).reader_lag()
    return store


def positions(postgres_url: str, schema: str) -> list[int]:
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(f'SELECT position FROM "{schema}".facta_events ORDER BY position')
        return [row[0] for row in rows]


def test_an_exhausted_pool_raises_an_error_naming_its_size_and_timeout(url: str) -> None:
    with facta.connect(url, pool_size=1, pool_timeout=0.2) as store:
        with pg(store).connection(), pytest.raises(PoolExhausted) as raised:
            store.stream_version("s")
        assert "pool_size=1" in str(raised.value)
        assert "pool_timeout=0.2s" in str(raised.value)
        assert store.stream_version("s") == 0  # the connection came back: the pool works


async def test_an_exhausted_async_pool_raises_an_error_naming_its_size(
    async_store: facta.AsyncEventStore,
) -> None:
    async with async_pg(async_store).connection():
        with pytest.raises(PoolExhausted, match="pool_size=1"):
            await async_store.append("s", [Happened(1)], facta.ANY)
    assert await async_store.stream_version("s") == 0


def test_an_exhausted_pool_is_a_store_error() -> None:
    assert issubclass(PoolExhausted, StoreError)


def test_a_connection_lost_in_the_middle_of_an_append_writes_nothing(
    store: facta.EventStore, postgres_url: str
) -> None:
    store.append("second", [Happened(0)], facta.ANY)
    with psycopg.connect(postgres_url) as blocker, ThreadPoolExecutor(1) as pool:
        # Lock the second stream, so the append stops after claiming the first one.
        blocker.execute(
            f'SELECT 1 FROM "{pg(store).schema}".facta_streams WHERE stream_id = %s FOR UPDATE',
            ["second"],
        )
        append = pool.submit(
            store.append_many,
            [
                StreamAppend("first", [Happened(1)], facta.ANY),
                StreamAppend("second", [Happened(2)], facta.ANY),
            ],
        )
        appender = wait_for_backend_blocked_by(postgres_url, blocker)
        blocker.execute("SELECT pg_terminate_backend(%s)", [appender])
        blocker.rollback()
        with pytest.raises(StoreError, match="connection failed while appending"):
            append.result()
    assert store.stream_version("first") == 0
    assert [e.data.n for e in store.read_stream("second")] == [0]
    assert store.append("first", [Happened(3)], facta.ANY).version == 1  # the pool recovered


def wait_for_backend_blocked_by(
    postgres_url: str, blocker: psycopg.Connection[tuple[object, ...]]
) -> int:
    """The pid of the server process waiting on ``blocker``'s lock."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        with psycopg.connect(postgres_url) as watcher:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [blocker.info.backend_pid],
            ).fetchone()
        if row is not None:
            pid = row[0]
            assert isinstance(pid, int)
            return pid
        time.sleep(0.005)
    raise AssertionError("the append never waited on the blocker")


def test_a_conflict_in_one_stream_of_a_multi_stream_append_writes_no_stream(
    store: facta.EventStore,
) -> None:
    store.append("b", [Happened(0)], facta.ANY)
    with pytest.raises(ConcurrencyError) as raised:
        store.append_many(
            [
                StreamAppend("a", [Happened(1)], ExpectedVersion.NO_STREAM),
                StreamAppend("b", [Happened(2)], 5),
                StreamAppend("c", [Happened(3)], facta.ANY),
            ]
        )
    assert (raised.value.stream_id, raised.value.actual) == ("b", 1)
    assert list(store.streams()) == [("b", 1)]
    assert [e.data.n for e in readable(store).read_all()] == [0]


def test_a_duplicate_event_id_in_a_multi_stream_append_writes_no_stream(
    store: facta.EventStore,
) -> None:
    stored = NewEvent(Happened(0))
    store.append("x", [stored], facta.ANY)
    with pytest.raises(DuplicateEventId, match=str(stored.event_id)):
        store.append_many(
            [
                StreamAppend("a", [Happened(1)], facta.ANY),
                StreamAppend("b", [NewEvent(Happened(2)), stored], facta.ANY),
            ]
        )
    assert list(store.streams()) == [("x", 1)]


def test_racing_appends_to_one_stream_with_any_version_all_land_without_gaps(
    store: facta.EventStore,
) -> None:
    start = threading.Barrier(4)

    def write(n: int) -> None:
        start.wait()
        for i in range(10):
            store.append("hot", [Happened(n * 100 + i)], facta.ANY)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    assert [e.version for e in store.read_stream("hot")] == list(range(1, 41))


def test_losers_of_a_race_for_a_new_stream_burn_no_positions(
    store: facta.EventStore, postgres_url: str
) -> None:
    start = threading.Barrier(4)

    def create(n: int) -> bool:
        start.wait()
        try:
            store.append("contested", [Happened(n)], ExpectedVersion.NO_STREAM)
        except ConcurrencyError:
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(create, range(4)))
    store.append("after", [Happened(9)], facta.ANY)
    assert won.count(True) == 1
    assert positions(postgres_url, pg(store).schema) == [1, 2]


def test_a_stale_expected_version_burns_no_position(
    store: facta.EventStore, postgres_url: str
) -> None:
    store.append("s", [Happened(1)], facta.ANY)
    with pytest.raises(ConcurrencyError):
        store.append("s", [Happened(2)], ExpectedVersion.NO_STREAM)
    with pytest.raises(ConcurrencyError):
        store.append("t", [Happened(2)], ExpectedVersion.STREAM_EXISTS)
    store.append("s", [Happened(3)], 1)
    assert positions(postgres_url, pg(store).schema) == [1, 2]


def test_interleaved_readers_of_many_streams_share_a_one_connection_pool(url: str) -> None:
    with facta.connect(url, pool_size=1, pool_timeout=1) as store:
        for n in range(5):
            store.append(f"s{n}", [Happened(i) for i in range(10)], facta.ANY)
        readers = [store.read_stream(f"s{n}", batch_size=3) for n in range(5)]
        rounds = [[next(reader).data.n for reader in readers] for _ in range(10)]
    assert rounds == [[i] * 5 for i in range(10)]


def test_the_first_wait_for_events_returns_at_once_since_events_may_have_come_before(
    store: facta.EventStore,
) -> None:
    assert pg(store).wait_for_events(30) is True


def test_wait_for_events_times_out_when_nothing_is_appended(store: facta.EventStore) -> None:
    pg(store).wait_for_events(0)
    assert pg(store).wait_for_events(0.05) is False


def test_wait_for_events_wakes_when_another_store_appends(
    store: facta.EventStore, url: str
) -> None:
    pg(store).wait_for_events(0)
    with facta.connect(url) as other:
        other.append("s", [Happened(1)], facta.ANY)
    assert pg(store).wait_for_events(30) is True


async def test_async_wait_for_events_wakes_on_an_append(
    async_store: facta.AsyncEventStore,
) -> None:
    await async_pg(async_store).wait_for_events(0)
    await async_store.append("s", [Happened(1)], facta.ANY)
    assert await async_pg(async_store).wait_for_events(30) is True


def test_connection_gives_a_pooled_connection_to_the_stores_database(
    store: facta.EventStore,
) -> None:
    store.append("s", [Happened(1)], facta.ANY)
    with pg(store).connection() as conn, conn.transaction():
        row = conn.execute(f'SELECT count(*) FROM "{pg(store).schema}".facta_events').fetchone()
    assert row == (1,)


def test_a_closed_store_refuses_calls(url: str) -> None:
    store = facta.connect(url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.stream_version("s")


def test_read_all_of_an_empty_store_yields_nothing(store: facta.EventStore) -> None:
    assert list(store.read_all(Checkpoint())) == []


def test_appends_naming_the_same_streams_in_opposite_orders_never_deadlock(
    store: facta.EventStore,
) -> None:
    start = threading.Barrier(4)

    def write(n: int) -> None:
        names = ["left", "right", f"new-{n}"] if n % 2 else [f"new-{n}", "right", "left"]
        start.wait()
        for i in range(15):
            store.append_many(
                [StreamAppend(name, [Happened(n * 100 + i)], facta.ANY) for name in names]
            )
            names = [f"{name}-{i}" if name.startswith("new") else name for name in names]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    assert store.stream_version("left") == store.stream_version("right") == 60


def test_an_append_to_several_streams_takes_positions_in_the_order_it_names_them(
    store: facta.EventStore,
) -> None:
    results = store.append_many(
        [
            StreamAppend("zulu", [Happened(1), Happened(2)], facta.ANY),
            StreamAppend("alpha", [Happened(3)], facta.ANY),
        ]
    )
    assert [(r.stream_id, r.position) for r in results] == [("zulu", 2), ("alpha", 3)]
    assert [e.data.n for e in readable(store).read_all()] == [1, 2, 3]


# -- lock timeout -------------------------------------------------------------------------------


@contextmanager
def stream_row_locked(postgres_url: str, schema: str, stream_id: str) -> Iterator[None]:
    """Another session holds the stream's row (SELECT ... FOR UPDATE) until the block ends."""
    with psycopg.connect(postgres_url) as locker:
        locker.execute(
            f'SELECT 1 FROM "{schema}".facta_streams WHERE stream_id = %s FOR UPDATE', [stream_id]
        )
        yield


@contextmanager
def stream_held_by_a_writer(postgres_url: str, schema: str, stream_id: str) -> Iterator[None]:
    """Another session holds the stream as an append in progress does (its advisory lock)."""
    with psycopg.connect(postgres_url) as writer:
        writer.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            [stream_lock_class(schema), stream_id],
        )
        yield


def test_the_default_lock_timeout_is_five_seconds_on_pooled_sessions(
    store: facta.EventStore,
) -> None:
    with pg(store).connection() as conn:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("5s",)


@pytest.mark.parametrize("hold", [stream_row_locked, stream_held_by_a_writer])
def test_an_append_to_a_stream_another_session_holds_gives_up_after_lock_timeout(
    url: str, postgres_url: str, hold: Callable[[str, str, str], AbstractContextManager[None]]
) -> None:
    with facta.connect(url, lock_timeout=0.3) as store:
        store.append("s", [Happened(1)], facta.ANY)
        with hold(postgres_url, pg(store).schema, "s"):
            started = time.monotonic()
            with pytest.raises(LockTimeout) as raised:
                store.append("s", [Happened(2)], facta.ANY)
            waited = time.monotonic() - started
        assert 0.3 <= waited < 5
        assert str(raised.value).startswith(
            "stream 's': waited more than lock_timeout=0.3s for a lock another session holds"
        )
        assert "nothing was written" in str(raised.value)
        assert isinstance(raised.value, StoreError)
        assert [e.data.n for e in store.read_stream("s")] == [1]
        assert store.append("s", [Happened(3)], facta.ANY).version == 2  # and the stream goes on


def test_an_append_to_several_streams_one_of_which_is_held_names_them_all(
    url: str, postgres_url: str
) -> None:
    with facta.connect(url, lock_timeout=0.2) as store:
        store.append("b", [Happened(0)], facta.ANY)
        both = [
            StreamAppend("a", [Happened(1)], facta.ANY),
            StreamAppend("b", [Happened(2)], facta.ANY),
        ]
        with (
            stream_row_locked(postgres_url, pg(store).schema, "b"),
            pytest.raises(LockTimeout, match=r"streams 'a', 'b': waited more than lock_timeout"),
        ):
            store.append_many(both)
        assert list(store.streams()) == [("b", 1)]


@pytest.mark.parametrize("no_limit", [0, None])
def test_without_a_lock_timeout_an_append_waits_as_long_as_the_stream_is_held(
    url: str, postgres_url: str, no_limit: float | None
) -> None:
    with facta.connect(url, lock_timeout=no_limit) as store, ThreadPoolExecutor(1) as pool:
        store.append("s", [Happened(1)], facta.ANY)
        with stream_held_by_a_writer(postgres_url, pg(store).schema, "s"):
            append = pool.submit(store.append, "s", [Happened(2)], facta.ANY)
            time.sleep(0.5)
            assert not append.done()
        assert append.result(timeout=PATIENCE).version == 2
