"""Group commit on SQLite: appends that queue while the store's connection is busy are
committed in one transaction, and each caller still gets its own result or error.

The tests hold the connection with ``recorder.transaction()``, let appends queue behind it
(``len(recorder._queue)`` says when they have), and count the COMMITs its connection runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import facta
from facta.backends.sqlite.recorder import SQLiteRecorder
from facta.backends.sqlite.recorder_async import AsyncSQLiteRecorder
from facta.records import StoredEvent
from facta.testing.events import Happened

# Which test thread (or task) made an append: what an inline projection should see.
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("CALLER", default="")


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def queued(store: facta.EventStore | facta.AsyncEventStore) -> int:
    """How many appends wait for the store's connection."""
    recorder = store.recorder
    assert isinstance(recorder, SQLiteRecorder | AsyncSQLiteRecorder)
    return len(recorder._queue)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the appends never queued"
        time.sleep(0.001)


class Hook:
    """An inline-projection hook: notes each stream with the caller it ran for, writes a row
    per event into ``seen``, and raises after writing for stream ``bad``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def call(self, connection: sqlite3.Connection, events: Sequence[StoredEvent]) -> None:
        for event in events:
            self.calls.append((event.stream_id, CALLER.get()))
            connection.execute("INSERT INTO seen VALUES (?)", (event.stream_id,))
            if event.stream_id == "bad":
                raise ValueError("the projection refuses stream 'bad'")

    async def call_async(self, connection: Any, events: Sequence[StoredEvent]) -> None:
        raise AssertionError("SQLite calls inline projections synchronously")


class Appender(threading.Thread):
    """A thread that appends one event to ``stream_id`` and keeps the outcome."""

    def __init__(self, store: facta.EventStore, stream_id: str, expected: int, n: int = 1):
        super().__init__()
        self.store, self.stream_id, self.expected, self.n = store, stream_id, expected, n
        self.result: facta.AppendResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        CALLER.set(self.stream_id)
        try:
            self.result = self.store.append(self.stream_id, [Happened(self.n)], self.expected)
        except BaseException as e:
            self.error = e


@contextmanager
def queued_behind_a_transaction(
    store: facta.EventStore, appenders: list[Appender]
) -> Iterator[list[str]]:
    """Start the appenders while the store's connection is held, let them all queue, then
    let go; yields the statements the connection runs from then on."""
    statements: list[str] = []
    with store.recorder.transaction() as connection:
        connection.set_trace_callback(statements.append)
        for appender in appenders:
            appender.start()
        wait_until(lambda: queued(store) == len(appenders))
    yield statements
    for appender in appenders:
        appender.join()
    connection.set_trace_callback(None)


def test_appends_queued_while_the_connection_is_busy_are_committed_together(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        appenders = [Appender(store, f"s{i}", facta.NO_STREAM, i) for i in range(4)]
        with queued_behind_a_transaction(store, appenders) as statements:
            pass
        # The held transaction's COMMIT, then one for the four appends.
        assert statements.count("COMMIT") == 2
        assert [a.error for a in appenders] == [None] * 4
        results = [a.result for a in appenders]
        assert [(r.stream_id, r.version) for r in results if r] == [(f"s{i}", 1) for i in range(4)]
        positions = [r.position for r in results if r]
        assert positions == sorted(set(positions))
        for i in range(4):
            assert [e.data for e in store.read_stream(f"s{i}")] == [Happened(i)]


def test_an_append_refused_in_a_group_fails_alone_and_the_others_are_committed(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        store.append("taken", [Happened(0)], facta.NO_STREAM)
        appenders = [
            Appender(store, "a", facta.NO_STREAM),
            Appender(store, "taken", 5),
            Appender(store, "b", facta.NO_STREAM),
        ]
        with queued_behind_a_transaction(store, appenders):
            pass
        assert [appenders[0].error, appenders[2].error] == [None, None]
        assert isinstance(appenders[1].error, facta.ConcurrencyError)
        assert store.stream_version("taken") == 1
        assert [e.stream_id for e in store.read_all()] == ["taken", "a", "b"]


def test_a_retried_append_in_the_same_group_is_found_already_appended(tmp_path: Path) -> None:
    event = facta.NewEvent(Happened(1), uuid.uuid4())
    outcomes: list[facta.AppendResult] = []

    def append() -> None:
        outcomes.append(store.append("s", [event], facta.NO_STREAM))

    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with store.recorder.transaction():
            threads = [threading.Thread(target=append) for _ in range(2)]
            for thread in threads:
                thread.start()
            wait_until(lambda: queued(store) == 2)
        for thread in threads:
            thread.join()
        assert sorted(r.already_appended for r in outcomes) == [False, True]
        assert [e.event_id for e in store.read_stream("s")] == [event.event_id]


def test_an_inline_projection_failing_in_a_group_takes_back_only_its_own_append(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with store.recorder.transaction() as connection:
            connection.execute("CREATE TABLE seen (stream_id TEXT NOT NULL)")
        hook = store.recorder.on_append = Hook()
        appenders = [Appender(store, name, facta.NO_STREAM) for name in ("a", "bad", "b")]
        with queued_behind_a_transaction(store, appenders):
            pass
        assert isinstance(appenders[1].error, ValueError)
        assert [appenders[0].error, appenders[2].error] == [None, None]
        store.recorder.on_append = None
        assert [e.stream_id for e in store.read_all()] == ["a", "b"]
        with store.recorder.transaction() as connection:
            seen = [row[0] for row in connection.execute("SELECT stream_id FROM seen")]
        assert seen == ["a", "b"]
        # Each append's projection ran with its own caller's context variables.
        assert all(stream_id == caller for stream_id, caller in hook.calls)
        assert {stream_id for stream_id, _ in hook.calls} == {"a", "bad", "b"}


def test_an_append_inside_the_stores_own_transaction_fails_without_the_queued_ones(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        other = Appender(store, "other", facta.NO_STREAM)

        def append_in_the_transaction() -> None:
            with store.recorder.transaction():
                other.start()
                wait_until(lambda: queued(store) == 1)
                store.append("mine", [Happened(1)], facta.NO_STREAM)

        with pytest.raises(facta.StoreError, match="within a transaction"):
            append_in_the_transaction()
        other.join()
        assert other.error is None
        assert [e.stream_id for e in store.read_all()] == ["other"]


async def test_async_appends_queued_behind_one_another_are_committed_together(
    tmp_path: Path,
) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db")) as store:
        await store.append("taken", [Happened(0)], facta.NO_STREAM)
        statements: list[str] = []

        async def append(stream_id: str, expected: int) -> facta.AppendResult:
            CALLER.set(stream_id)
            return await store.append(stream_id, [Happened(1)], expected)

        async with store.recorder.transaction() as connection:
            connection.set_trace_callback(statements.append)
            tasks = [
                asyncio.ensure_future(append(name, expected))
                for name, expected in (("a", facta.NO_STREAM), ("taken", 5), ("b", 0))
            ]
            await asyncio.sleep(0)  # each task runs until it waits for the connection
            assert queued(store) == 3
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        connection.set_trace_callback(None)
        assert statements.count("COMMIT") == 2
        assert isinstance(outcomes[1], facta.ConcurrencyError)
        assert [(r.stream_id, r.version) for r in outcomes if isinstance(r, tuple)] == [
            ("a", 1),
            ("b", 1),
        ]
        assert [e.stream_id async for e in store.read_all()] == ["taken", "a", "b"]


async def test_a_cancelled_append_that_has_queued_is_written_once_as_any_started_call(
    tmp_path: Path,
) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db")) as store:
        async with store.recorder.transaction():
            cancelled = asyncio.ensure_future(store.append("c", [Happened(1)], facta.NO_STREAM))
            others = asyncio.ensure_future(store.append("o", [Happened(2)], facta.NO_STREAM))
            await asyncio.sleep(0)  # both wait for the connection
            cancelled.cancel()
            await asyncio.sleep(0)
            assert queued(store) == 1  # the cancelled one left the queue
        await others
        assert cancelled.cancelled()
        await store.append("after", [Happened(3)], facta.NO_STREAM)
        assert [e.stream_id async for e in store.read_all()] == ["c", "o", "after"]


async def test_appends_refused_before_their_turn_leave_nothing_queued(tmp_path: Path) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db"), migrate=False) as store:
        with pytest.raises(facta.SchemaVersionError):
            await store.append("s", [Happened(1)], facta.NO_STREAM)
        assert queued(store) == 0
        await store.recorder.migrate()
        await store.append("t", [Happened(1)], facta.NO_STREAM)
        assert [e.stream_id async for e in store.read_all()] == ["t"]


def test_writers_racing_through_groups_lose_nothing_and_keep_each_streams_order(
    tmp_path: Path,
) -> None:
    def own(stream_id: str) -> None:
        for version in range(50):
            store.append(stream_id, [Happened(version + 1)], version)

    def shared() -> None:
        for _ in range(50):
            store.append("shared", [Happened(0)], facta.ANY)

    with facta.connect(url_of(tmp_path / "x.db"), synchronous="NORMAL") as store:
        threads = [threading.Thread(target=own, args=(f"s{i}",)) for i in range(4)]
        threads += [threading.Thread(target=shared) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = list(store.read_all())
        assert [e.position for e in log] == sorted({e.position for e in log})
        for i in range(4):
            assert [e.version for e in log if e.stream_id == f"s{i}"] == list(range(1, 51))
            assert [e.data for e in log if e.stream_id == f"s{i}"] == [
                Happened(n) for n in range(1, 51)
            ]
        assert [e.version for e in log if e.stream_id == "shared"] == list(range(1, 101))
