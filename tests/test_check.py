"""``facta check``: every stored event and snapshot read with the current code, nothing written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

import facta
from facta import AsyncRepository, CheckFailure, CheckReport, Codec, EventRegistry
from facta.check_report import KEPT_FAILURES, SnapshotChecker
from facta.snapshots import SnapshotRecord
from facta.testing.events import Happened

then = EventRegistry()  # the code that wrote the store
now = EventRegistry()  # the code that checks it: Noted went to version 2 without an upcaster


@facta.event("test_check.Noted", registry=then)
@facta.event("test_check.Noted", version=2, registry=now)
@dataclass(frozen=True)
class Noted:
    text: str


@facta.event("test_check.Dropped", registry=then)
@dataclass(frozen=True)
class Dropped:
    reason: str


@facta.event("test_check.Counted", registry=then)
@facta.event("test_check.Counted", registry=now)
@dataclass(frozen=True)
class Counted:
    by: int


@dataclass
class CounterState:
    total: int


class Counter(facta.Aggregate):
    type_name = "test_check.Counter"
    snapshot_every = 2
    snapshot_type = CounterState

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0

    def apply(self, event: object) -> None:
        if isinstance(event, Counted):
            self.total += event.by

    def snapshot_state(self) -> CounterState:
        return CounterState(self.total)

    def restore_state(self, state: CounterState) -> None:
        self.total = state.total


async def sound(store: facta.AsyncEventStore) -> None:
    """Streams "c-1" (3 events, a snapshot at 2) and "c-2" (2 events, a snapshot at 2)."""
    store.codec = Codec(now)
    repository = AsyncRepository(store, Counter)
    for stream_id, saves in (("c-1", [[1, 2], [3]]), ("c-2", [[4, 5]])):
        counter = Counter(stream_id)
        for amounts in saves:
            for amount in amounts:
                counter.record(Counted(amount))
            await repository.save(counter)
    await settled(store)


async def settled(store: facta.AsyncEventStore) -> None:
    """On PostgreSQL, wait until the global log shows everything written (other sessions on
    the shared server hold it back for a moment)."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:
        assert await wait(60.0), "the global log stayed held back"


async def broken(store: facta.AsyncEventStore) -> tuple[int, int]:
    """The sound store, with two events the current code cannot read ("n-1" version 2 and
    "n-2" version 1) and a corrupt snapshot of "c-2"; their positions."""
    await sound(store)
    store.codec = Codec(then)
    await store.append("n-1", [Counted(1), Noted("old")], facta.ANY)
    second = await store.append("n-2", [Dropped("gone"), Counted(2)], facta.ANY)
    (snapshot,) = await store.read_snapshots("c-2")
    await store.write_snapshot(snapshot._replace(state=b'{"total":  9}'))
    store.codec = Codec(now)
    await settled(store)
    return second.position - 2, second.position - 1


async def test_sound_store_checks_without_failures_and_counts_what_it_read(
    async_store: facta.AsyncEventStore,
) -> None:
    await sound(async_store)

    report = await facta.check_store_async(async_store, [Counter])

    assert report.ok
    assert (report.streams, report.events, report.snapshots) == (2, 5, 2)
    assert report.unchecked_snapshots == 0
    assert report.summary() == "checked 5 events in 2 streams and 2 snapshots: no failures"


async def test_check_reports_every_failure_with_its_place_and_never_stops(
    async_store: facta.AsyncEventStore,
) -> None:
    noted, dropped = await broken(async_store)

    report = await facta.check_store_async(async_store, [Counter])

    assert not report.ok
    assert (report.events, report.event_failures, report.snapshot_failures) == (9, 2, 1)
    snapshot, first, second = report.failures
    assert (first.kind, first.stream_id, first.version, first.position) == (
        "event",
        "n-1",
        2,
        noted,
    )
    assert str(first).startswith(
        f"stream 'n-1' version 2 (position {noted}): type 'test_check.Noted' schema version 1: "
    )
    assert str(second).startswith(f"stream 'n-2' version 1 (position {dropped}): ")
    assert "no event class is registered for type 'test_check.Dropped'" in str(second)
    assert (snapshot.kind, snapshot.stream_id, snapshot.version) == ("snapshot", "c-2", 2)
    assert str(snapshot).startswith("snapshot of stream 'c-2' at version 2: ")
    assert "checksum mismatch" in str(snapshot)
    assert report.summary() == (
        "checked 9 events in 4 streams and 2 snapshots: 3 failures (2 events, 1 snapshot)"
    )


async def test_check_passes_each_failure_to_on_failure_as_it_is_found(
    async_store: facta.AsyncEventStore,
) -> None:
    await broken(async_store)
    found: list[CheckFailure] = []

    report = await facta.check_store_async(async_store, [Counter], on_failure=found.append)

    assert found == report.failures


async def test_check_writes_nothing(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await broken(async_store)
    async_store.codec = Codec(then)
    before = ([e.event_id async for e in async_store.read_all()], await snapshots(async_store))

    def no_writing(*args: object) -> None:
        raise AssertionError("the check wrote")

    monkeypatch.setattr(async_store.recorder, "append", no_writing)
    monkeypatch.setattr(async_store.recorder, "write_snapshot", no_writing)
    async_store.codec = Codec(now)

    await facta.check_store_async(async_store, [Counter])

    async_store.codec = Codec(then)
    assert before == (
        [e.event_id async for e in async_store.read_all()],
        await snapshots(async_store),
    )


async def snapshots(store: facta.AsyncEventStore) -> list[SnapshotRecord]:
    return [
        s async for stream_id, _ in store.streams() for s in await store.read_snapshots(stream_id)
    ]


async def test_snapshots_of_aggregate_types_not_given_are_only_checksummed(
    async_store: facta.AsyncEventStore,
) -> None:
    await broken(async_store)

    report = await facta.check_store_async(async_store, [])

    assert (report.snapshots, report.unchecked_snapshots, report.snapshot_failures) == (2, 2, 1)
    assert "of aggregate types not imported had only their checksum checked" in report.summary()


async def test_check_reports_progress_up_to_the_total(
    async_store: facta.AsyncEventStore,
) -> None:
    await broken(async_store)
    calls: list[tuple[int, int]] = []

    await facta.check_store_async(
        async_store, [Counter], progress=lambda *call: calls.append(call), batch_size=2
    )

    assert calls[-1] == (13, 13)  # 4 streams' snapshots and 9 events
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_sync_check_reads_the_store_the_same_way(store: facta.EventStore) -> None:
    store.codec = Codec(now)
    repository = facta.Repository(store, Counter)
    counter = Counter("c-1")
    counter.record(Counted(1))
    counter.record(Counted(2))
    repository.save(counter)
    store.codec = Codec(then)
    store.append("n-1", [Noted("old")], facta.ANY)
    store.codec = Codec(now)
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:  # PostgreSQL on a shared server: as settled() does
        assert wait(60.0)

    report = facta.check_store(store, [Counter])

    assert (report.events, report.snapshots, report.event_failures) == (3, 1, 1)


def test_report_counts_every_failure_but_keeps_only_the_first_ones() -> None:
    report = CheckReport()
    for version in range(1, KEPT_FAILURES + 11):
        report.add(CheckFailure("event", "s", version, version, f"failure {version}"))

    assert report.event_failures == KEPT_FAILURES + 10
    assert [f.version for f in report.failures] == list(range(1, KEPT_FAILURES + 1))


def test_two_aggregate_classes_of_one_type_name_fail_only_their_own_snapshots() -> None:
    class Twin(Counter):
        type_name = "test_check.Counter"

    checker = SnapshotChecker([Counter, Twin])
    record = SnapshotRecord("c-1", 3, "test_check.Counter", 1, 0, 0, b"{}")

    checked, failure = checker.check(record)

    assert not checked
    assert failure is not None
    assert "both named 'test_check.Counter'" in failure.message


def test_a_database_failure_fails_the_report_and_is_counted_apart() -> None:
    report = CheckReport(streams=1, events=2)
    report.add(CheckFailure("database", "", 0, None, "x.db: the database is damaged: page 3"))

    assert not report.ok
    assert (report.database_failures, report.event_failures, report.snapshot_failures) == (1, 0, 0)
    assert report.summary() == (
        "checked 2 events in 1 stream and 0 snapshots: 1 failure (0 events, 0 snapshots, "
        "1 database problem)"
    )


async def test_a_recorder_reports_no_integrity_problems_by_default(
    async_store: facta.AsyncEventStore,
) -> None:
    await sound(async_store)

    assert await async_store.recorder.check_integrity() == []


# -- a damaged SQLite file ----------------------------------------------------------------------

MANY = 3_000  # events enough for facta's indexes to span many pages


def many_events(path: Path) -> str:
    """A SQLite store of MANY events (one stream each), closed: all in the main file."""
    url = f"sqlite:///{path}"
    with facta.connect(url) as store:
        store.append_many(
            [facta.StreamAppend(f"s-{n}", [Happened(n)], facta.ANY) for n in range(MANY)]
        )
    assert not Path(f"{path}-wal").exists()
    return url


def damage(path: Path, name: str, data: bytes) -> None:
    """Overwrite the middle of the first leaf page under the b-tree ``name`` (a table or an
    index of more than one page) with ``data``."""
    with closing(sqlite3.connect(path)) as db:
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        page = file.read(page_size)
        assert page[0] in (0x02, 0x05), "an interior page, whose first cell names a leaf"
        cell = int.from_bytes(page[12:14], "big")
        leaf = int.from_bytes(page[cell : cell + 4], "big")
        file.seek((leaf - 1) * page_size + page_size // 2)
        file.write(data)


def integrity(path: Path) -> list[str]:
    """What SQLite's own integrity check says of the file."""
    with closing(sqlite3.connect(path)) as db:
        try:
            return [row[0] for row in db.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as e:
            return [str(e)]


def test_check_reports_each_problem_of_a_damaged_file_whose_rows_still_read(
    tmp_path: Path,
) -> None:
    url = many_events(tmp_path / "x.db")
    damage(tmp_path / "x.db", "facta_events_type", bytes(8))  # an index the check never reads
    problems = integrity(tmp_path / "x.db")
    assert problems != ["ok"]

    with facta.connect(url, read_only=True) as store:
        assert store.recorder.check_integrity() == problems
        report = facta.check_store(store)

    assert not report.ok
    assert (report.events, report.event_failures) == (MANY, 0)  # every row decoded
    assert report.database_failures == len(problems)
    assert [(f.kind, f.message) for f in report.failures] == [
        ("database", f"SQLite file '{tmp_path / 'x.db'}': the database is damaged: {problem}")
        for problem in problems
    ]


async def test_the_async_check_reports_a_file_too_damaged_for_the_integrity_check_to_end(
    tmp_path: Path,
) -> None:
    url = many_events(tmp_path / "x.db")
    damage(tmp_path / "x.db", "facta_events_type", b"\xff" * 64)
    assert integrity(tmp_path / "x.db") == ["database disk image is malformed"]

    async with facta.connect_async(url, read_only=True) as store:
        report = await facta.check_store_async(store)

    assert (report.database_failures, report.events) == (1, MANY)
    assert report.failures[0].message.endswith(
        "the database is damaged: database disk image is malformed"
    )


def test_check_reports_damage_that_stops_the_reading_and_ends_there(tmp_path: Path) -> None:
    url = many_events(tmp_path / "x.db")
    damage(tmp_path / "x.db", "facta_events", b"\xff" * 64)

    with facta.connect(url, read_only=True) as store:
        report = facta.check_store(store)

    assert not report.ok
    assert report.database_failures >= 2
    last = report.failures[-1]
    assert last.kind == "database"
    assert "the database is damaged: reading stopped: " in last.message
    assert "malformed" in last.message


# -- the command --------------------------------------------------------------------------------

APP = '''
"""A small application, as `facta check --import shop` sees it."""
from dataclasses import dataclass

import facta

legacy = facta.EventRegistry()


@facta.event("shop.Added")
@dataclass(frozen=True)
class Added:
    amount: int


@facta.event("shop.Legacy", registry=legacy)
@dataclass(frozen=True)
class Legacy:
    note: str


@dataclass
class CartState:
    total: int


class Cart(facta.Aggregate):
    type_name = "shop.Cart"
    snapshot_every = 2
    snapshot_type = CartState

    def __init__(self, id=None):
        super().__init__(id)
        self.total = 0

    def apply(self, event):
        self.total += event.amount

    def snapshot_state(self):
        return CartState(self.total)

    def restore_state(self, state):
        self.total = state.total


def fill_many(url, n):
    with facta.connect(url) as store:
        store.append_many([facta.StreamAppend(f"cart-{i}", [Added(1)], facta.ANY) for i in range(n)])


def fill(url, legacy_event):
    with facta.connect(url) as store:
        cart = Cart("cart-1")
        cart.record(Added(2))
        cart.record(Added(3))
        facta.Repository(store, Cart).save(cart)
        if legacy_event:
            store.codec = facta.Codec(legacy)
            store.append("old-1", [Legacy("from an older release")], facta.ANY)
'''


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "shop.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return tmp_path


def fill(app: Path, *, legacy_event: bool) -> str:
    url = f"sqlite:///{app / 'shop.db'}"
    done = run(app, "-c", f"import shop; shop.fill({url!r}, {legacy_event})")
    assert done.returncode == 0, done.stderr
    return url


def test_command_on_a_sound_store_prints_the_summary_and_exits_0(app: Path) -> None:
    url = fill(app, legacy_event=False)

    done = run(app, "-m", "facta", "check", "--import", "shop", url)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "checked 2 events in 1 stream and 1 snapshot: no failures\n"


def test_command_prints_each_failure_and_exits_1(app: Path) -> None:
    url = fill(app, legacy_event=True)
    with closing(sqlite3.connect(app / "shop.db")) as db, db:
        db.execute("UPDATE facta_snapshots SET state = CAST('{\"total\": 6}' AS BLOB)")

    done = run(app, "-m", "facta", "check", "-i", "shop", url)

    assert done.returncode == 1, done.stderr
    snapshot, event, summary = done.stdout.splitlines()
    assert snapshot.startswith("snapshot of stream 'cart-1' at version 2: ")
    assert "checksum mismatch" in snapshot
    assert event.startswith("stream 'old-1' version 1 (position 3): ")
    assert "no event class is registered for type 'shop.Legacy'" in event
    assert summary == (
        "checked 3 events in 2 streams and 1 snapshot: 2 failures (1 event, 1 snapshot)"
    )


def test_command_on_a_damaged_file_prints_each_problem_and_exits_1(app: Path) -> None:
    url = f"sqlite:///{app / 'shop.db'}"
    done = run(app, "-c", f"import shop; shop.fill_many({url!r}, {MANY})")
    assert done.returncode == 0, done.stderr
    damage(app / "shop.db", "facta_events_type", bytes(8))
    problems = integrity(app / "shop.db")
    assert problems != ["ok"]

    done = run(app, "-m", "facta", "check", "-i", "shop", url)

    assert done.returncode == 1, done.stderr
    *failures, summary = done.stdout.splitlines()
    assert failures == [
        f"SQLite file '{app / 'shop.db'}': the database is damaged: {problem}"
        for problem in problems
    ]
    assert summary == (
        f"checked {MANY:,} events in {MANY:,} streams and 0 snapshots: "
        f"{len(problems)} failure{'s' if len(problems) > 1 else ''} (0 events, 0 snapshots, "
        f"{len(problems)} database problem{'s' if len(problems) > 1 else ''})"
    )


def test_command_without_the_application_module_fails_the_aggregates_snapshots_unchecked(
    app: Path,
) -> None:
    url = fill(app, legacy_event=False)

    done = run(app, "-m", "facta", "check", url)

    assert done.returncode == 1
    assert "no event class is registered for type 'shop.Added'" in done.stdout
    assert "1 snapshot of aggregate types not imported had only their checksum checked" in (
        done.stdout
    )


def test_command_with_a_module_that_does_not_import_fails_cleanly(app: Path) -> None:
    url = fill(app, legacy_event=False)

    done = run(app, "-m", "facta", "check", "-i", "no_such_module", url)

    assert done.returncode == 2
    assert "cannot import 'no_such_module'" in done.stderr
    assert "Traceback" not in done.stderr
