"""Subscriptions follow writers in other processes: every event once, in the log's order.

Four writer processes append concurrently (on PostgreSQL they commit out of the order in
which they took their positions); a subscriber that started before them sees each event
exactly once, each stream's versions in order, and the same sequence ``read_all`` returns.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

import facta

WRITERS, EACH = 4, 150
WRITER = """
import sys
from dataclasses import dataclass
import facta

@facta.event("tests.subscriptions.Rung")
@dataclass(frozen=True)
class Rung:
    writer: int
    n: int

url, writer, each = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with facta.connect(url) as store:
    for n in range(each):
        if n % 5 == 4:  # now and then two streams at once
            store.append_many([
                facta.StreamAppend(f"w{writer}-a", [Rung(writer, n)], facta.ANY),
                facta.StreamAppend(f"shared-{n % 3}", [Rung(writer, n)], facta.ANY),
            ])
        else:
            store.append(f"shared-{n % 3}", [Rung(writer, n)], facta.ANY)
"""


@facta.event("tests.subscriptions.Rung")
@dataclass(frozen=True)
class Rung:
    writer: int
    n: int


def expected_count() -> int:
    return WRITERS * (EACH + EACH // 5)


def start_writers(url: str, tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return [
        subprocess.Popen([sys.executable, str(script), url, str(w), str(EACH)])
        for w in range(WRITERS)
    ]


def check(seen: list[facta.RecordedEvent], logged: list[facta.RecordedEvent]) -> None:
    assert len(seen) == expected_count()
    assert len({e.event_id for e in seen}) == len(seen)  # none twice
    versions: dict[str, int] = {}
    for event in seen:  # each stream's versions in order, none missing
        assert event.version == versions.get(event.stream_id, 0) + 1, event
        versions[event.stream_id] = event.version
    assert [e.event_id for e in seen] == [e.event_id for e in logged]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_subscriber_follows_writers_in_other_processes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        url = f"{postgres_url}?schema={request.getfixturevalue('pg_schema')}"
    with facta.connect(url) as store:
        writers = start_writers(url, tmp_path)
        seen: list[facta.RecordedEvent] = []
        with store.subscribe(types=["tests.subscriptions.Rung"], poll_interval=0.05) as events:
            for event in events:
                seen.append(event)
                if len(seen) == expected_count():
                    break
        for writer in writers:
            assert writer.wait(timeout=120) == 0
        check(seen, list(store.read_all(types=["tests.subscriptions.Rung"])))


def test_a_memory_subscriber_follows_writer_threads() -> None:
    with facta.connect("memory://") as store:

        def write(writer: int) -> None:
            for n in range(EACH):
                if n % 5 == 4:
                    store.append_many(
                        [
                            facta.StreamAppend(f"w{writer}-a", [Rung(writer, n)], facta.ANY),
                            facta.StreamAppend(f"shared-{n % 3}", [Rung(writer, n)], facta.ANY),
                        ]
                    )
                else:
                    store.append(f"shared-{n % 3}", [Rung(writer, n)], facta.ANY)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        seen: list[facta.RecordedEvent] = []
        with store.subscribe(poll_interval=5.0) as events:  # wake-ups, not polls, drive it
            for thread in threads:
                thread.start()
            for event in events:
                seen.append(event)
                if len(seen) == expected_count():
                    break
        for thread in threads:
            thread.join()
        check(seen, list(store.read_all()))


async def test_an_async_memory_subscriber_wakes_at_once_on_an_append() -> None:
    store = facta.connect_async("memory://")
    async with store, store.subscribe(poll_interval=60.0) as events:
        waiting = asyncio.ensure_future(anext(aiter(events)))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await store.append("bell", [Rung(0, 1)], facta.ANY)
        event = await asyncio.wait_for(waiting, 5.0)  # not the 60 s poll
        assert event.data == Rung(0, 1)


async def test_a_sqlite_subscriber_wakes_on_another_connection_s_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = facta.connect_async(url)
    async with store, store.subscribe(poll_interval=60.0) as events:
        waiting = asyncio.ensure_future(anext(aiter(events)))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        with facta.connect(url) as other:  # another connection, as another process would be
            other.append("bell", [Rung(0, 1)], facta.ANY)
        event = await asyncio.wait_for(waiting, 5.0)  # the data version, not the 60 s poll
        assert event.data == Rung(0, 1)


def test_the_last_checkpoint_is_where_a_reader_of_new_events_starts(url: str) -> None:
    with facta.connect(url) as store:
        assert store.recorder.last_checkpoint() == facta.Checkpoint()
        store.append("bell", [Rung(0, 1), Rung(0, 2)], facta.ANY)
        wait = getattr(store.recorder, "wait_until_readable", None)
        if wait is not None:
            assert wait(60.0)
        *_, last = store.read_all()
        assert store.recorder.last_checkpoint() == last.checkpoint
