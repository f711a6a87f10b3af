"""The SQLite backend's URLs and options, and how it shares a file with an application.

Options: ``timeout``, ``synchronous``, ``migrate``, ``create`` and ``read_only``. A store that is not allowed
to create must leave a file that holds no facta store exactly as it was: these tests compare
its bytes. Migrations (and facta 0.1 files) are in ``test_sqlite_migrations.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

import facta
from facta.backends.sqlite import schema
from facta.backends.sqlite.recorder import SQLiteRecorder
from facta.backends.sqlite.recorder_async import AsyncSQLiteRecorder
from facta.errors import ConfigurationError, NotAFactaStore, SchemaVersionError
from facta.projections import Projection, ProjectionRunner, handles
from facta.recorder import Recorder
from facta.recorder_async import AsyncRecorder
from facta.records import StoredEvent
from facta.snapshots import SnapshotRecord
from facta.testing.events import Happened

ALL = list(range(1, schema.latest_version() + 1))  # every migration, in order


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def numbers(store: facta.EventStore, stream_id: str) -> list[int]:
    return [e.data.n for e in store.read_stream(stream_id)]


def make_store(path: Path, *ns: int) -> None:
    """A facta store at ``path`` whose stream ``s`` holds ``Happened(n)`` for each n."""
    with facta.connect(url_of(path)) as store:
        if ns:
            store.append("s", [Happened(n) for n in ns], facta.ANY)


def make_app_file(path: Path) -> None:
    """An application's own SQLite file, with its own ``events`` table and user_version."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT NOT NULL)")
    db.execute("INSERT INTO events (what) VALUES ('signed up'), ('paid')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


def files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- URLs and options ---------------------------------------------------------------------------


def test_an_unknown_option_is_refused_listing_the_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        facta.connect(url_of(tmp_path / "x.db"), pool_size=3)
    message = str(caught.value)
    assert "pool_size" in message
    for option in ("timeout", "synchronous", "migrate", "create", "read_only"):
        assert option in message
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", "soon"),
        ("timeout", -1),
        ("timeout", True),
        ("read_only", "yes"),
        ("create", 1),
        ("synchronous", "OFF"),
        ("synchronous", "EXTRA"),
        ("synchronous", 2),
        ("synchronous", None),
    ],
)
def test_an_option_of_the_wrong_kind_is_refused(tmp_path: Path, option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        facta.connect(url_of(tmp_path / "x.db"), **{option: value})
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://x.db"])
def test_a_url_naming_no_file_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="three slashes"):
        facta.connect(url)


def test_query_parameters_in_the_url_are_refused_and_no_file_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///q.db?mode=ro", "sqlite:///file:q.db?mode=memory&cache=shared"):
        with pytest.raises(ConfigurationError, match="no query parameters"):
            facta.connect(url)
        with pytest.raises(ConfigurationError, match="no query parameters"):
            facta.connect_async(url)
    assert list(tmp_path.iterdir()) == []


def test_a_relative_url_names_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with facta.connect("sqlite:///relative.db") as store:
        store.append("s", [Happened(1)], facta.ANY)
        assert store.recorder.location == "SQLite file 'relative.db'"
    assert (tmp_path / "relative.db").exists()


def test_an_in_memory_database_is_a_private_store() -> None:
    with facta.connect("sqlite:///:memory:") as store:
        store.append("s", [Happened(1)], facta.ANY)
        assert numbers(store, "s") == [1]
    with facta.connect("sqlite:///:memory:") as store:
        assert numbers(store, "s") == []


def test_an_in_memory_store_cannot_be_shared_with_a_projection_runner() -> None:
    with (
        facta.connect("sqlite:///:memory:") as store,
        pytest.raises(ConfigurationError, match="':memory:' store is private"),
    ):
        store.recorder.checkpoints("totals")


@contextmanager
def writing(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding a write transaction on ``path`` (an event written)."""
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute(
            "INSERT INTO facta_events (stream_id, version, event_id, type, schema_version,"
            " encoding, data, metadata, recorded_at) VALUES ('other', 1, randomblob(16), 'T',"
            " 1, 0, x'7b7d', x'7b7d', 0)"
        )
        yield blocker
    finally:
        blocker.rollback()
        blocker.close()


def test_the_timeout_is_how_long_a_write_waits_for_another_writer(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db")
    with (
        facta.connect(url_of(tmp_path / "x.db"), timeout=0.05) as store,
        writing(tmp_path / "x.db"),
    ):
        started = time.monotonic()
        with pytest.raises(facta.StoreError, match="locked"):
            store.append("s", [Happened(1)], facta.ANY)
        assert 0.04 < time.monotonic() - started < 5


def test_an_append_that_waits_too_long_names_its_streams_and_the_timeout(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    appends = [facta.StreamAppend(stream_id, [Happened(2)], facta.ANY) for stream_id in "sabcd"]
    with (
        facta.connect(url_of(tmp_path / "x.db"), timeout=0.05) as store,
        writing(tmp_path / "x.db"),
    ):
        with pytest.raises(facta.StoreError) as one:
            store.append("s", [Happened(2)], facta.ANY)
        with pytest.raises(facta.StoreError) as several:
            store.append_many(appends)
        with pytest.raises(facta.StoreError) as snapshot:
            store.write_snapshot(SnapshotRecord("s", 1, "A", 1, 0, 0, b"{}"))
    assert str(one.value) == (
        f"SQLite file '{tmp_path / 'x.db'}': appending to stream 's' waited more than "
        "timeout=0.05s for another connection's write lock (database is locked); nothing was "
        "written. Another process or thread held a write transaction all that time: keep write "
        "transactions short, or raise timeout"
    )
    assert "appending to streams 's', 'a', 'b' and 2 more waited more than timeout=0.05s" in str(
        several.value
    )
    assert "writing a snapshot of stream 's' waited more than timeout=0.05s" in str(snapshot.value)
    with facta.connect(url_of(tmp_path / "x.db"), read_only=True) as store:
        assert numbers(store, "s") == [1]
        assert store.read_snapshots("s") == []


async def test_an_async_append_that_waits_too_long_names_its_stream(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db")
    async with facta.connect_async(url_of(tmp_path / "x.db"), timeout=0.05) as store:
        with writing(tmp_path / "x.db"), pytest.raises(facta.StoreError) as caught:
            await store.append("s", [Happened(1)], facta.ANY)
    assert "appending to stream 's' waited more than timeout=0.05s" in str(caught.value)


# -- synchronous: durability ----------------------------------------------------------------------


class Probe(Projection[sqlite3.Connection]):
    """Notes the runner connection's PRAGMA synchronous."""

    name = "probe"

    def __init__(self) -> None:
        self.levels: list[int] = []

    @handles(Happened)
    def happened(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        self.levels.append(db.execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(
    ("options", "level"),
    [
        ({}, 2),
        ({"synchronous": "FULL"}, 2),
        ({"synchronous": "NORMAL"}, 1),
        ({"synchronous": "normal"}, 1),
    ],
    ids=["default", "FULL", "NORMAL", "normal"],
)
def test_synchronous_is_set_on_the_store_and_runner_connections(
    tmp_path: Path, options: dict[str, Any], level: int
) -> None:
    """FULL (2, the default) syncs at every commit: an acknowledged append survives a power
    cut. NORMAL (1) is opted into."""
    with facta.connect(url_of(tmp_path / "x.db"), **options) as store:
        store.append("s", [Happened(1)], facta.ANY)
        with store.recorder.transaction() as db:
            assert db.execute("PRAGMA synchronous").fetchone() == (level,)
        probe = Probe()
        with ProjectionRunner(store, probe) as runner:
            assert runner.catch_up() == 1
        assert probe.levels == [level]


@pytest.mark.parametrize(("synchronous", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_synchronous_is_set_on_the_async_store_connection(
    tmp_path: Path, synchronous: str, level: int
) -> None:
    url = url_of(tmp_path / "x.db")
    async with (
        facta.connect_async(url, synchronous=synchronous) as store,
        store.recorder.transaction() as db,
    ):
        assert db.execute("PRAGMA synchronous").fetchone() == (level,)


# -- create=False -------------------------------------------------------------------------------


def test_create_false_on_a_missing_file_is_not_a_facta_store_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(NotAFactaStore, match=r"not a facta store") as caught:
        facta.connect(url_of(path), create=False)
    assert str(path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_create_false_on_an_application_file_changes_nothing(tmp_path: Path) -> None:
    make_app_file(tmp_path / "app.db")
    before = files(tmp_path)
    with pytest.raises(NotAFactaStore, match="not a facta store"):
        facta.connect(url_of(tmp_path / "app.db"), create=False)
    assert files(tmp_path) == before


def test_create_false_opens_an_existing_store(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1, 2)
    with facta.connect(url_of(tmp_path / "x.db"), create=False) as store:
        store.append("s", [Happened(3)], facta.ANY)
        assert numbers(store, "s") == [1, 2, 3]


# -- read_only ----------------------------------------------------------------------------------


def test_read_only_on_a_missing_file_is_not_a_facta_store_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(NotAFactaStore, match="not a facta store") as caught:
        facta.connect(url_of(path), read_only=True)
    assert str(path) in str(caught.value)
    with pytest.raises(NotAFactaStore, match="not a facta store"):
        facta.connect_async(url_of(path), read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_read_only_on_an_empty_file_is_not_a_facta_store_and_changes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(NotAFactaStore, match="not a facta store") as caught:
        facta.connect(url_of(tmp_path / "empty.db"), read_only=True)
    assert "empty.db" in str(caught.value)
    assert files(tmp_path) == {"empty.db": b""}


def test_read_only_on_an_application_file_is_not_a_facta_store_and_changes_nothing(
    tmp_path: Path,
) -> None:
    make_app_file(tmp_path / "app.db")
    before = files(tmp_path)
    with pytest.raises(NotAFactaStore, match="not a facta store") as caught:
        facta.connect(url_of(tmp_path / "app.db"), read_only=True)
    assert "app.db" in str(caught.value)
    assert files(tmp_path) == before


@pytest.mark.parametrize("options", [{"read_only": True}, {"create": False}, {}])
def test_a_file_that_is_not_sqlite_is_not_a_facta_store(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    (tmp_path / "notes.txt").write_bytes(b"not a database at all, just some words " * 50)
    before = files(tmp_path)
    with pytest.raises(NotAFactaStore, match="not a SQLite database"):
        facta.connect(url_of(tmp_path / "notes.txt"), **options)
    assert files(tmp_path) == before


def test_read_only_reads_a_store(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1, 2)
    with facta.connect(url_of(tmp_path / "x.db"), read_only=True) as store:
        assert numbers(store, "s") == [1, 2]
        assert [e.data.n for e in store.read_all()] == [1, 2]
        assert store.recorder.migrate() == []


def test_read_only_cannot_write_and_nothing_is_written(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    before = (tmp_path / "x.db").read_bytes()
    with facta.connect(url_of(tmp_path / "x.db"), read_only=True) as store:
        with pytest.raises(facta.StoreError, match="read-only; nothing was written"):
            store.append("s", [Happened(2)], facta.ANY)
        with pytest.raises(facta.StoreError, match="read-only"):
            store.write_snapshot(SnapshotRecord("s", 1, "A", 1, 0, 0, b"{}"))
        with pytest.raises(facta.StoreError, match="read-only"), store.recorder.transaction():
            pass
        assert numbers(store, "s") == [1]
    assert (tmp_path / "x.db").read_bytes() == before


def test_a_read_only_store_cannot_run_a_projection(tmp_path: Path) -> None:
    class Nothing(Projection[sqlite3.Connection]):
        name = "nothing"

    make_store(tmp_path / "x.db", 1)
    with facta.connect(url_of(tmp_path / "x.db"), read_only=True) as store:
        with pytest.raises(facta.StoreError, match="read-only"), ProjectionRunner(store, Nothing()):
            pass
        assert store.recorder.projection_statuses() == []


async def test_the_async_store_opened_read_only_cannot_write(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    async with facta.connect_async(url_of(tmp_path / "x.db"), read_only=True) as store:
        with pytest.raises(facta.StoreError, match="read-only"):
            await store.append("s", [Happened(2)], facta.ANY)
        assert [e.data.n async for e in store.read_stream("s")] == [1]


# -- opening never waits for the write lock -----------------------------------------------------


def open_and_read(url: str, options: dict[str, Any], found: list[object]) -> None:
    try:
        with facta.connect(url, **options) as store:
            found.append(numbers(store, "s"))
    except BaseException as e:  # reported by the test
        found.append(e)


@pytest.mark.parametrize("options", [{}, {"create": False}, {"read_only": True}])
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_store_opens_and_reads_while_another_connection_holds_a_write_transaction(
    tmp_path: Path, options: dict[str, Any], journal: str
) -> None:
    """With the default timeout (30 s): opening reads only. "delete": a store someone put
    in rollback-journal mode, which opening leaves to be switched back to WAL later."""
    make_store(tmp_path / "x.db", 1, 2)
    if journal != "wal":
        with closing(sqlite3.connect(tmp_path / "x.db")) as db:
            assert db.execute(f"PRAGMA journal_mode = {journal}").fetchone() == (journal,)
    found: list[object] = []
    with writing(tmp_path / "x.db"):
        opener = threading.Thread(
            target=open_and_read, args=(url_of(tmp_path / "x.db"), options, found)
        )
        started = time.monotonic()
        opener.start()
        opener.join(5)
        waited = time.monotonic() - started
    opener.join()
    assert found == [[1, 2]]
    assert waited < 5


def test_a_store_in_rollback_journal_mode_goes_back_to_wal_when_it_is_free(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    with closing(sqlite3.connect(tmp_path / "x.db")) as db:
        db.execute("PRAGMA journal_mode = DELETE")
    with facta.connect(url_of(tmp_path / "x.db")) as store, store.recorder.transaction() as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` and its files made read-only (as root, by the immutable attribute, which
    even root cannot write through); skips the test where that cannot be done."""
    modes = {p: p.stat().st_mode for p in (folder, *folder.iterdir())}
    immutable = False
    try:
        for path in modes:
            path.chmod(0o555 if path == folder else 0o444)
        if writable(folder):  # root
            immutable = try_chattr("+i", folder)
            if not immutable or writable(folder):
                pytest.skip("cannot make a folder read-only here (root without chattr +i)")
        yield
    finally:
        if immutable:
            try_chattr("-i", folder)
        for path, mode in modes.items():
            path.chmod(mode)


def writable(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def try_chattr(flag: str, path: Path) -> bool:
    try:
        done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    except OSError:
        return False
    return done.returncode == 0


def test_read_only_reads_a_store_in_a_folder_it_cannot_write(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    make_store(folder / "x.db", 1, 2)
    before = files(folder)
    with unwritable(folder):
        with facta.connect(url_of(folder / "x.db"), read_only=True) as store:
            assert numbers(store, "s") == [1, 2]
        with pytest.raises(facta.StoreError, match="connect with read_only=True"):
            facta.connect(url_of(folder / "x.db"))
        assert files(folder) == before


def test_read_only_refuses_a_read_only_folder_whose_wal_holds_commits(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    folder = tmp_path / "ro"
    folder.mkdir()
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        store.append("s", [Happened(2)], facta.ANY)  # in x.db-wal until the store closes
        for name in ("x.db", "x.db-wal"):
            (folder / name).write_bytes((tmp_path / name).read_bytes())
    with unwritable(folder), pytest.raises(facta.StoreError, match=r"x\.db-wal"):
        facta.connect(url_of(folder / "x.db"), read_only=True)


# -- sharing a file with an application ---------------------------------------------------------


def test_an_application_events_table_lives_beside_the_store(tmp_path: Path) -> None:
    make_app_file(tmp_path / "app.db")
    with facta.connect(url_of(tmp_path / "app.db")) as store:
        store.append("s", [Happened(1), Happened(2)], facta.ANY)
        assert numbers(store, "s") == [1, 2]
    db = sqlite3.connect(tmp_path / "app.db")
    assert db.execute("SELECT id, what FROM events ORDER BY id").fetchall() == [
        (1, "signed up"),
        (2, "paid"),
    ]
    assert db.execute("PRAGMA user_version").fetchone() == (1,)  # still the application's
    db.close()


def test_an_application_can_create_its_own_events_table_in_a_store(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with store.recorder.transaction() as db:
            db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
            db.execute("INSERT INTO events (what) VALUES ('mine')")
        store.append("s", [Happened(2)], facta.ANY)
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        assert numbers(store, "s") == [1, 2]


@pytest.mark.parametrize("options", [{}, {"read_only": True}, {"create": False}])
def test_a_file_with_a_foreign_facta_table_is_refused_and_left_alone(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE facta_events (id INTEGER PRIMARY KEY, note TEXT)")
    db.commit()
    db.close()
    before = files(tmp_path)
    with pytest.raises(NotAFactaStore, match="not a facta store") as caught:
        facta.connect(url_of(tmp_path / "other.db"), **options)
    assert isinstance(caught.value, facta.StoreError)
    for words in ("other.db", "'facta_events'", "not facta's", "choose another file"):
        assert words in str(caught.value)
    assert files(tmp_path) == before


# -- the recorder -------------------------------------------------------------------------------


def test_the_store_records_through_a_sqlite_recorder(tmp_path: Path) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        recorder = store.recorder
        assert isinstance(recorder, SQLiteRecorder)
        assert recorder.location == f"SQLite file '{tmp_path / 'x.db'}'"
        assert recorder.migrate() == []  # opening applied them


async def test_the_async_store_records_through_an_async_sqlite_recorder(tmp_path: Path) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db")) as store:
        assert isinstance(store.recorder, AsyncSQLiteRecorder)
        assert store.recorder.sync_transactions
        assert await store.recorder.migrate() == []


class Hook:
    """An on_append hook that keeps what it is called with, or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[Any, list[StoredEvent]]] = []

    def call(self, connection: Any, events: Sequence[StoredEvent]) -> None:
        connection.execute("INSERT INTO seen VALUES (?)", (len(events),))
        self.calls.append((connection, list(events)))
        if self.fail:
            raise RuntimeError("refused")

    async def call_async(self, connection: Any, events: Sequence[StoredEvent]) -> None:
        raise AssertionError("a SQLite recorder calls its hook synchronously")


def test_the_append_hook_gets_the_rows_read_all_returns_inside_the_transaction(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with store.recorder.transaction() as db:
            db.execute("CREATE TABLE seen (count INTEGER)")
        store.recorder.on_append = hook = Hook()
        store.append_many(
            [
                facta.StreamAppend("a", [Happened(1), Happened(2)], facta.ANY),
                facta.StreamAppend("b", [Happened(3)], facta.ANY),
            ]
        )
        store.append("c", [], facta.ANY)
        (connection, rows), *more = hook.calls
        assert more == []
        assert isinstance(connection, sqlite3.Connection)
        assert rows == store.recorder.read_all(facta.Checkpoint(), None, 10)
        with store.recorder.transaction() as db:
            assert db.execute("SELECT count FROM seen").fetchall() == [(3,)]


def test_an_append_hook_that_fails_leaves_nothing_written(tmp_path: Path) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with store.recorder.transaction() as db:
            db.execute("CREATE TABLE seen (count INTEGER)")
        store.recorder.on_append = Hook(fail=True)
        with pytest.raises(RuntimeError, match="refused"):
            store.append("s", [Happened(1)], facta.ANY)
        store.recorder.on_append = None
        assert numbers(store, "s") == []
        with store.recorder.transaction() as db:
            assert db.execute("SELECT count(*) FROM seen").fetchone() == (0,)


def insert_and_fail(recorder: Recorder) -> None:
    with recorder.transaction() as db:
        db.execute("INSERT INTO notes VALUES ('lost')")
        raise KeyError("no")


async def insert_and_fail_async(recorder: AsyncRecorder) -> None:
    async with recorder.transaction() as db:
        db.execute("INSERT INTO notes VALUES ('lost')")
        raise KeyError("no")


def test_a_transaction_that_raises_is_rolled_back(tmp_path: Path) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with store.recorder.transaction() as db:
            db.execute("CREATE TABLE notes (note TEXT)")
        with pytest.raises(KeyError):
            insert_and_fail(store.recorder)
        store.append("s", [Happened(1)], facta.ANY)  # the store is usable again
        with store.recorder.transaction() as db:
            assert db.execute("SELECT count(*) FROM notes").fetchone() == (0,)


def test_using_the_store_inside_its_own_transaction_fails_instead_of_hanging(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")) as store:
        with pytest.raises(facta.StoreError), store.recorder.transaction():
            store.append("s", [Happened(1)], facta.ANY)
        assert numbers(store, "s") == []


async def test_an_async_transaction_commits_and_the_store_waits_for_it(tmp_path: Path) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db")) as store:
        async with store.recorder.transaction() as db:
            db.execute("CREATE TABLE notes (note TEXT)")
            writer = asyncio.create_task(store.append("s", [Happened(1)], facta.ANY))
            await asyncio.sleep(0.05)
            assert not writer.done()  # it waits for the transaction to end
            db.execute("INSERT INTO notes VALUES ('kept')")
        await writer
        with pytest.raises(KeyError):
            await insert_and_fail_async(store.recorder)
        async with store.recorder.transaction() as db:
            assert db.execute("SELECT note FROM notes").fetchall() == [("kept",)]
        assert [e.data.n async for e in store.read_stream("s")] == [1]


@pytest.mark.parametrize("attempt", range(5))
def test_stores_opening_a_new_file_at_once_create_it_once(tmp_path: Path, attempt: int) -> None:
    found: list[object] = []
    threads = [
        threading.Thread(target=open_and_read, args=(url_of(tmp_path / "x.db"), {}, found))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [[]] * 6
    with closing(sqlite3.connect(tmp_path / "x.db")) as db:
        versions = db.execute("SELECT version FROM facta_migrations").fetchall()
        assert versions == [(n,) for n in ALL]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_migrations_applied_at_once_by_several_stores_run_once(tmp_path: Path) -> None:
    applied: list[list[int]] = []

    def migrate(store: facta.EventStore) -> None:
        applied.append(store.recorder.migrate())

    stores = [facta.connect(url_of(tmp_path / "x.db"), migrate=False) for _ in range(6)]
    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(applied) == [[]] * 5 + [ALL]


def test_migrate_false_opens_a_store_that_is_up_to_date(tmp_path: Path) -> None:
    make_store(tmp_path / "x.db", 1)
    with facta.connect(url_of(tmp_path / "x.db"), migrate=False) as store:
        assert numbers(store, "s") == [1]


def test_migrate_false_on_a_new_file_applies_nothing_until_migrate(tmp_path: Path) -> None:
    url = url_of(tmp_path / "x.db")
    with facta.connect(url, migrate=False) as store:
        with closing(sqlite3.connect(tmp_path / "x.db")) as db:
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
        message = (
            f"holds no facta store yet.*run `facta migrate {url}`, or connect with migrate=True"
        )
        with pytest.raises(SchemaVersionError, match=message):
            store.append("s", [Happened(1)], facta.ANY)
        with pytest.raises(SchemaVersionError, match=message):
            store.recorder.checkpoints("totals")
        with pytest.raises(SchemaVersionError, match=message), store.recorder.transaction():
            pass
        assert store.recorder.migrate() == ALL
        assert store.recorder.migrate() == []
        store.append("s", [Happened(1)], facta.ANY)
        assert numbers(store, "s") == [1]


async def test_migrate_false_on_a_new_file_applies_nothing_until_async_migrate(
    tmp_path: Path,
) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db"), migrate=False) as store:
        with pytest.raises(SchemaVersionError, match="holds no facta store yet"):
            await store.append("s", [Happened(1)], facta.ANY)
        assert await store.recorder.migrate() == ALL
        await store.append("s", [Happened(1)], facta.ANY)
        assert [e.data.n async for e in store.read_stream("s")] == [1]


def test_create_false_on_a_missing_file_says_how_to_create_a_store(tmp_path: Path) -> None:
    url = url_of(tmp_path / "x.db")
    with pytest.raises(NotAFactaStore) as caught:
        facta.connect(url, create=False)
    assert f"run `facta migrate {url}` or connect with create=True" in str(caught.value)


async def test_a_transaction_cancelled_at_any_step_leaves_the_store_usable(tmp_path: Path) -> None:
    async with facta.connect_async(url_of(tmp_path / "x.db")) as store:
        recorder = store.recorder
        entered = asyncio.Event()

        async def hold() -> None:
            async with recorder.transaction():
                entered.set()
                await asyncio.sleep(3600)

        async def wait_to_begin() -> None:
            async with recorder.transaction():
                raise AssertionError("cancelled before it began")  # pragma: no cover

        holder = asyncio.create_task(hold())
        await entered.wait()
        waiter = asyncio.create_task(wait_to_begin())
        await asyncio.sleep(0.05)  # the waiter's worker thread waits for the lock
        waiter.cancel()
        holder.cancel()
        for task in (waiter, holder):
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.wait_for(store.append("s", [Happened(1)], facta.ANY), 5)
        async with asyncio.timeout(5), recorder.transaction():
            pass
        assert [e.data.n async for e in store.read_stream("s")] == [1]
