"""One aggregate with a very long stream: loads via its snapshot, replays in bounded memory, and
survives snapshots that fail every time.

The stream holds ``FACTA_SCALE_EVENTS`` events (default 200,000), appended in bulk. Memory is
asserted as bounded growth (tracemalloc), never as time. Run by hand, this module measures:

    python tests/test_snapshots_scale.py URL [EVENTS]

prints the load time via snapshot, the full replay rate and its peak RSS (in a fresh process),
and the load time of a 10,000-event aggregate with snapshots every 100 events.
"""

from __future__ import annotations

import logging
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import psutil  # type: ignore[import-untyped]  # (no stubs in the dev tools)
import pytest

import facta
from facta.snapshots import SnapshotRecord

EVENTS = int(os.environ.get("FACTA_SCALE_EVENTS", "200000"))
CHUNK = 10_000

pytestmark = pytest.mark.slow


@facta.event("test_snapshots_scale.Added")
@dataclass(frozen=True)
class Added:
    amount: int


@dataclass
class SumState:
    total: int
    count: int


class Sum(facta.Aggregate):
    """A snapshot every 1,000 events; ``replayed`` counts the events the last load applied."""

    type_name = "test_snapshots_scale.Sum"
    snapshot_every: ClassVar[int | None] = 1000
    snapshot_type = SumState

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0
        self.count = 0
        self.replayed = 0

    def apply(self, event: object) -> None:
        if isinstance(event, Added):
            self.total += event.amount
            self.count += 1
            self.replayed += 1

    def snapshot_state(self) -> SumState:
        return SumState(self.total, self.count)

    def restore_state(self, state: SumState) -> None:
        self.total, self.count = state.total, state.count


class PlainSum(Sum):
    """The same aggregate, loaded by replaying its whole stream every time."""

    snapshot_every = None


class EverySave(Sum):
    """The same aggregate, snapshotted after every event."""

    type_name = "test_snapshots_scale.EverySave"
    snapshot_every = 1


def build(store: facta.EventStore, stream_id: str, events: int) -> None:
    """Append ``events`` events (amounts 0, 1, 2, ...) to a new stream, in bulk."""
    for start in range(0, events, CHUNK):
        amounts = range(start, min(start + CHUNK, events))
        store.append(stream_id, [Added(a) for a in amounts], start or facta.NO_STREAM)


def total_of(events: int) -> int:
    return events * (events - 1) // 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The backends that persist (overrides conftest's, which includes memory)."""
    name: str = request.param
    return name


@pytest.fixture
def big(url: str) -> Iterator[facta.EventStore]:
    """A store holding stream "big" with EVENTS events and no snapshot."""
    with facta.connect(url) as store:
        build(store, "big", EVENTS)
        yield store


@contextmanager
def traced() -> Iterator[None]:
    """Trace allocations (tracemalloc.get_traced_memory() reads them)."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


class Replay(NamedTuple):
    events: int
    seconds: float
    peak_rss: int  # bytes, of the whole process


def replay_in_a_fresh_process(url: str, version: int) -> Replay:
    """Replay stream "big" up to ``version`` without snapshots, in a new Python process."""
    done = subprocess.run(
        [sys.executable, __file__, "--replay", url, str(version)],
        capture_output=True,
        text=True,
        check=True,
    )
    events, seconds, peak_rss = done.stdout.split()
    return Replay(int(events), float(seconds), int(peak_rss))


@contextmanager
def counted_snapshot_logs() -> Iterator[list[int]]:
    """Count the facta.snapshots log records instead of letting pytest keep every one."""
    logger = logging.getLogger("facta.snapshots")
    count = [0]

    class Counting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # format it (traceback included), as a real handler would
            count[0] += 1

    handler = Counting()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield count
    finally:
        logger.propagate = True
        logger.removeHandler(handler)


def test_long_stream_loads_from_its_snapshot_without_replaying(big: facta.EventStore) -> None:
    repository = facta.Repository(big, Sum)

    first = repository.load("big")  # replays everything, then writes the snapshot
    second = repository.load("big")

    assert (first.replayed, first.total) == (EVENTS, total_of(EVENTS))
    assert [s.version for s in big.read_snapshots("big")] == [EVENTS]
    assert (second.replayed, second.total, second.version) == (0, total_of(EVENTS), EVENTS)


def test_full_replay_memory_does_not_grow_with_the_stream_length(
    big: facta.EventStore, url: str
) -> None:
    tenth = replay_in_a_fresh_process(url, EVENTS // 10)
    whole = replay_in_a_fresh_process(url, EVENTS)

    assert (tenth.events, whole.events) == (EVENTS // 10, EVENTS)
    assert whole.peak_rss < tenth.peak_rss + 16 * 2**20, (tenth, whole)


def test_snapshots_that_fail_every_time_do_not_exhaust_memory(
    big: facta.EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(snapshot: SnapshotRecord) -> None:
        raise facta.StoreError("the snapshots table is gone")

    monkeypatch.setattr(big, "write_snapshot", broken)
    repository = facta.Repository(big, Sum)
    every_save = facta.Repository(big, EverySave)
    small = EverySave("small")

    def save_one() -> None:
        small.record(Added(1))
        every_save.save(small)

    process = psutil.Process()
    with counted_snapshot_logs() as logged:
        replayed = [repository.load("big").replayed]  # each load tries to write a snapshot
        after_one_load = process.memory_info().rss
        replayed += [repository.load("big").replayed for _ in range(4)]
        after_five_loads = process.memory_info().rss
    with counted_snapshot_logs() as logged_saves, traced():
        for _ in range(20):
            save_one()
        after_20_saves = tracemalloc.get_traced_memory()[0]
        for _ in range(500):
            save_one()
        after_520_saves = tracemalloc.get_traced_memory()[0]

    assert replayed == [EVENTS] * 5  # no snapshot was ever written, so each load replays all
    assert (logged, logged_saves) == ([5], [520])
    assert after_five_loads - after_one_load < 16 * 2**20, (after_one_load, after_five_loads)
    assert after_520_saves - after_20_saves < 2**20, (after_20_saves, after_520_saves)
    assert big.read_snapshots("big") == []


# -- measuring by hand ------------------------------------------------------------------------


def _replay(url: str, version: int) -> None:
    """Child process: replay stream "big" to ``version``; print count, seconds, peak RSS."""
    with facta.connect(url) as store:
        started = time.perf_counter()
        aggregate = facta.Repository(store, PlainSum).load("big", version=version)
        seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(aggregate.count, seconds, peak_rss)


def _load_times(repository: facta.Repository[Any], stream_id: str, runs: int = 200) -> str:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        repository.load(stream_id)
        times.append((time.perf_counter() - started) * 1000)
    return f"median {statistics.median(times):.3f} ms, min {min(times):.3f} ms ({runs} loads)"


def _measure(url: str, events: int) -> None:
    with facta.connect(url) as store:
        started = time.perf_counter()
        build(store, "big", events)
        print(f"built {events:,} events in {time.perf_counter() - started:.1f} s")
    replay = replay_in_a_fresh_process(url, events)
    print(
        f"full replay: {replay.events:,} events in {replay.seconds:.2f} s = "
        f"{replay.events / replay.seconds:,.0f} events/s; peak RSS {replay.peak_rss / 2**20:.0f} MiB"
    )
    with facta.connect(url) as store:
        repository = facta.Repository(store, Sum)
        repository.load("big")  # replays all and writes the snapshot
        loaded = repository.load("big")
        assert loaded.replayed == 0
        print(
            f"load of the {events:,}-event aggregate via its snapshot: {_load_times(repository, 'big')}"
        )

        class Every100(Sum):
            type_name = "test_snapshots_scale.Every100"
            snapshot_every = 100

        small = facta.Repository(store, Every100)
        aggregate = Every100("ten-thousand")
        for _ in range(200):  # saves of 50 events: a snapshot every 100
            for _ in range(50):
                aggregate.record(Added(1))
            small.save(aggregate)
        print(f"10,000-event aggregate, snapshot at 10,000: {_load_times(small, 'ten-thousand')}")
        for _ in range(99):
            aggregate.record(Added(1))
        small.save(aggregate)
        print(f"10,099-event aggregate, snapshot at 10,000: {_load_times(small, 'ten-thousand')}")


if __name__ == "__main__":
    if sys.argv[1] == "--replay":
        _replay(sys.argv[2], int(sys.argv[3]))
    else:
        _measure(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)
