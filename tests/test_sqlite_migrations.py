"""The SQLite backend's migrations: facta_migrations, newer schemas, and facta 0.1 files.

A facta 0.1 file is built here with 0.1's own DDL (tables ``events``, ``snapshots``,
``projection_checkpoints`` and ``projection_dead_letters``, its version in ``user_version``);
migration 1 renames those tables into the ``facta_`` names, data intact.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

import facta
from facta.backends.sqlite import schema
from facta.backends.sqlite.recorder import SQLiteRecorder
from facta.cli import main
from facta.codec import Codec
from facta.errors import SchemaVersionError
from facta.events import EMPTY_METADATA, Checkpoint
from facta.ids import uuid7
from facta.projections import Projection, ProjectionRunner, handles
from facta.snapshots import SnapshotRecord, checksum
from facta.testing.events import Happened

ALL = list(range(1, schema.latest_version() + 1))  # every migration, in order

# facta 0.1's schema, as its migration 0001_events.sql and its projections module made it.
LEGACY_DDL = (
    """CREATE TABLE events (
        position       INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        event_id       BLOB    NOT NULL UNIQUE,
        type           TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        encoding       INTEGER NOT NULL,
        data           BLOB    NOT NULL,
        metadata       BLOB    NOT NULL,
        recorded_at    REAL    NOT NULL,
        UNIQUE (stream_id, version)
    )""",
    "CREATE INDEX events_type ON events (type, position)",
    """CREATE TABLE snapshots (
        stream_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        aggregate_type TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        encoding       INTEGER NOT NULL,
        checksum       INTEGER NOT NULL,
        state          BLOB    NOT NULL,
        PRIMARY KEY (stream_id, version)
    ) WITHOUT ROWID""",
)
LEGACY_PROJECTION_DDL = (
    """CREATE TABLE IF NOT EXISTS projection_checkpoints (
        name           TEXT    PRIMARY KEY,
        transaction_id INTEGER NOT NULL,
        position       INTEGER NOT NULL,
        state          TEXT    NOT NULL,
        types          TEXT    NOT NULL,
        error          TEXT,
        updated_at     REAL    NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS projection_dead_letters (
        projection     TEXT    NOT NULL,
        transaction_id INTEGER NOT NULL,
        position       INTEGER NOT NULL,
        stream_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        event_id       BLOB    NOT NULL,
        type           TEXT    NOT NULL,
        error          TEXT    NOT NULL,
        failed_at      REAL    NOT NULL,
        PRIMARY KEY (projection, transaction_id, position)
    ) WITHOUT ROWID""",
)
HAPPENED = "facta.testing.Happened"
IDS = [uuid7() for _ in range(5)]
# (stream, version, n) of each event written, in log order: positions 1..5.
WRITTEN = [("a", 1, 1), ("b", 1, 2), ("a", 2, 3), ("a", 3, 4), ("b", 2, 5)]


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def make_legacy_file(path: Path, *, projections: bool = True) -> None:
    """A facta 0.1 store: five events, a snapshot, and (with ``projections``) the checkpoint
    of projection "totals" at position 3 and one dead letter."""
    codec = Codec()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN")
    for statement in LEGACY_DDL + (LEGACY_PROJECTION_DDL if projections else ()):
        db.execute(statement)
    for event_id, (stream_id, version, n) in zip(IDS, WRITTEN, strict=True):
        type_name, schema_version, encoding, data = codec.encode(stream_id, Happened(n))
        metadata = codec.encode_metadata(stream_id, EMPTY_METADATA)
        db.execute(
            "INSERT INTO events (stream_id, version, event_id, type, schema_version, encoding,"
            " data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stream_id, version, event_id.bytes, type_name, schema_version, encoding, data,
             metadata, 1_700_000_000.0 + version),
        )  # fmt: skip
    db.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)", legacy_snapshot())
    if projections:
        db.execute(
            "INSERT INTO projection_checkpoints VALUES ('totals', 0, 3, 'stopped', ?, NULL, ?)",
            (msgspec.json.encode([HAPPENED]).decode(), time.time()),
        )
        db.execute(
            "INSERT INTO projection_dead_letters VALUES ('totals', 0, 2, 'b', 1, ?, ?, ?, ?)",
            (IDS[1].bytes, HAPPENED, "ValueError: two", time.time()),
        )
    db.execute("PRAGMA user_version = 1")
    db.execute("COMMIT")
    db.close()


def legacy_snapshot() -> SnapshotRecord:
    return SnapshotRecord("a", 3, "tests.Counter", 1, 0, checksum(b"{}"), b"{}")


def tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {name for (name,) in rows if not name.startswith("sqlite_")}
    finally:
        db.close()


def layout(path: Path) -> dict[str, object]:
    """facta's tables in the file: their columns and their indexes' columns."""
    db = sqlite3.connect(path)
    try:
        found: dict[str, object] = {}
        for table in schema.TABLES:
            columns = [row[1:] for row in db.execute(f"PRAGMA table_info({table})")]
            indexes = sorted(
                (unique, origin, [c[2] for c in db.execute(f"PRAGMA index_info('{name}')")])
                for _, name, unique, origin, _ in db.execute(f"PRAGMA index_list({table})")
            )
            found[table] = (columns, indexes)
        found["indexes"] = sorted(
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            if not name.startswith("sqlite_")
        )
        return found
    finally:
        db.close()


def migrate(url: str) -> list[int]:
    """What ``facta migrate URL`` does: open without migrating, then apply the migrations."""
    with facta.connect(url, migrate=False) as store:
        assert isinstance(store.recorder, SQLiteRecorder)
        return store.recorder.migrate()


def versions(path: Path) -> list[int]:
    """The migrations ``facta_migrations`` records in the file."""
    with closing(sqlite3.connect(path)) as db:
        return [n for (n,) in db.execute("SELECT version FROM facta_migrations ORDER BY 1")]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class Totals(Projection[sqlite3.Connection]):
    name = "totals"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER)")

    @handles(Happened)
    def happened(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO seen VALUES (?)", (event.data.n,))


# -- facta_migrations ---------------------------------------------------------------------------


def test_migrations_are_numbered_from_one_and_shipped_as_sql_files() -> None:
    numbers = [m.number for m in schema.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert schema.migrations()[0].name == "layout"
    assert schema.latest_version() == numbers[-1]


def test_a_new_store_records_its_migrations_and_leaves_user_version_alone(
    tmp_path: Path,
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")):
        pass
    db = sqlite3.connect(tmp_path / "x.db")
    versions = db.execute("SELECT version FROM facta_migrations").fetchall()
    assert versions == [(n,) for n in range(1, schema.latest_version() + 1)]
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    db.close()
    assert tables(tmp_path / "x.db") == set(schema.TABLES)


@pytest.mark.parametrize("options", [{}, {"read_only": True}, {"migrate": False}])
def test_a_newer_schema_than_this_facta_knows_is_refused(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    with facta.connect(url_of(tmp_path / "x.db")):
        pass
    db = sqlite3.connect(tmp_path / "x.db")
    db.execute("INSERT INTO facta_migrations VALUES (999, 0)")
    db.commit()
    db.close()
    with pytest.raises(SchemaVersionError, match=r"version 999.*upgrade facta"):
        facta.connect(url_of(tmp_path / "x.db"), **options)


# -- facta 0.1 files ----------------------------------------------------------------------------


def test_a_legacy_file_is_migrated_with_its_data_intact(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    assert migrate(url_of(tmp_path / "old.db")) == ALL
    with facta.connect(url_of(tmp_path / "old.db")) as store:
        log = list(store.read_all())
        assert [(e.stream_id, e.version, e.data.n) for e in log] == WRITTEN
        assert [e.position for e in log] == [1, 2, 3, 4, 5]
        assert [e.event_id for e in log] == IDS
        assert [e.recorded_at.timestamp() for e in log] == [
            1_700_000_000.0 + version for _, version, _ in WRITTEN
        ]
        assert [e.data.n for e in store.read_stream("a")] == [1, 3, 4]
        assert [s.stream_id for s in store.streams()] == ["a", "b"]
        assert store.read_snapshots("a") == [legacy_snapshot()]
        (status,) = facta.projections.statuses(store)
        assert status == facta.projections.ProjectionStatus(
            "totals", Checkpoint(0, 3), 2, "stopped", None, dead_letters=1
        )
        result = store.append("a", [Happened(6)], expected_version=3)
        assert (result.version, result.position) == (4, 6)


def test_a_projection_goes_on_from_its_legacy_checkpoint(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    with (
        facta.connect(url_of(tmp_path / "old.db")) as store,
        ProjectionRunner(store, Totals()) as runner,
    ):
        assert runner.checkpoint == Checkpoint(0, 3)
        (parked,) = runner.dead_letters()
        assert (parked.stream_id, parked.event_id, parked.error) == ("b", IDS[1], "ValueError: two")
        assert runner.catch_up() == 2
        with store.recorder.transaction() as db:
            assert db.execute("SELECT n FROM seen ORDER BY n").fetchall() == [(4,), (5,)]


def test_a_migrated_legacy_file_has_the_layout_of_a_new_store(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    with facta.connect(url_of(tmp_path / "old.db")):
        pass
    with facta.connect(url_of(tmp_path / "new.db")):
        pass
    assert layout(tmp_path / "old.db") == layout(tmp_path / "new.db")
    assert tables(tmp_path / "old.db") == set(schema.TABLES)


def test_a_migrated_legacy_file_keeps_its_autoincrement_counter(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    with facta.connect(url_of(tmp_path / "old.db")):
        pass
    db = sqlite3.connect(tmp_path / "old.db")
    assert db.execute("SELECT name, seq FROM sqlite_sequence").fetchall() == [("facta_events", 5)]
    db.close()


def test_a_migrated_legacy_file_is_refused_by_facta_0_1(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    with facta.connect(url_of(tmp_path / "old.db")):
        pass
    db = sqlite3.connect(tmp_path / "old.db")
    # facta 0.1 read its version from user_version and refused any above 1 ("upgrade facta").
    assert db.execute("PRAGMA user_version").fetchone() == (2,)
    assert db.execute("SELECT version FROM facta_migrations").fetchall() == [(n,) for n in ALL]
    db.close()


def test_a_legacy_file_without_projection_tables_is_migrated(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db", projections=False)
    with facta.connect(url_of(tmp_path / "old.db")) as store:
        assert [e.data.n for e in store.read_all()] == [n for _, _, n in WRITTEN]
        assert facta.projections.statuses(store) == []
    assert tables(tmp_path / "old.db") == set(schema.TABLES)


def test_a_legacy_file_opened_with_migrate_false_says_to_run_facta_migrate_at_use(
    tmp_path: Path,
) -> None:
    make_legacy_file(tmp_path / "old.db")
    before = files(tmp_path)
    url = url_of(tmp_path / "old.db")
    with facta.connect(url, migrate=False) as store:
        for use in (
            lambda: list(store.read_all()),
            lambda: store.append("a", [Happened(6)], facta.ANY),
        ):
            with pytest.raises(
                SchemaVersionError,
                match=f"facta 0.1 store.*run `facta migrate {url}`, or connect with migrate=True",
            ):
                use()
    assert files(tmp_path) == before


def test_facta_migrate_migrates_a_legacy_file(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    url = url_of(tmp_path / "old.db")
    first, second = (
        CliRunner().invoke(main, ["migrate", url]),
        CliRunner().invoke(main, ["migrate", url]),
    )
    applied = ", ".join(map(str, ALL))
    assert (first.exit_code, first.output) == (0, f"applied migrations {applied}\n")
    assert (second.exit_code, second.output) == (0, "the schema is up to date; nothing to apply\n")
    with facta.connect(url, read_only=True) as store:
        assert [e.data.n for e in store.read_all()] == [n for _, _, n in WRITTEN]


def test_a_legacy_file_opened_read_only_is_outdated_and_unchanged(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    before = (tmp_path / "old.db").read_bytes()
    with pytest.raises(SchemaVersionError, match="facta migrate"):
        facta.connect(url_of(tmp_path / "old.db"), read_only=True)
    assert (tmp_path / "old.db").read_bytes() == before


def test_a_legacy_file_is_migrated_by_create_false(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    with facta.connect(url_of(tmp_path / "old.db"), create=False) as store:
        assert store.recorder.migrate() == []
    assert versions(tmp_path / "old.db") == ALL


def test_an_application_events_table_is_not_taken_for_a_legacy_store(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "app.db")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    db.execute("CREATE TABLE snapshots (id INTEGER PRIMARY KEY, image BLOB)")
    db.execute("INSERT INTO events (what) VALUES ('mine')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    assert migrate(url_of(tmp_path / "app.db")) == ALL
    with facta.connect(url_of(tmp_path / "app.db")) as store:
        assert list(store.read_all()) == []
    assert tables(tmp_path / "app.db") == {*schema.TABLES, "events", "snapshots"}
    db = sqlite3.connect(tmp_path / "app.db")
    assert db.execute("SELECT what FROM events").fetchall() == [("mine",)]
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    db.close()


def test_tables_shaped_like_0_1_are_not_a_legacy_store_without_its_user_version(
    tmp_path: Path,
) -> None:
    db = sqlite3.connect(tmp_path / "app.db")
    for statement in LEGACY_DDL:
        db.execute(statement)
    db.commit()
    db.close()
    with facta.connect(url_of(tmp_path / "app.db")) as store:
        store.append("s", [Happened(1)], facta.ANY)
    assert tables(tmp_path / "app.db") == {*schema.TABLES, "events", "snapshots"}


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    db = sqlite3.connect(tmp_path / "old.db")
    # An index named like one migration 1 creates makes it fail half-way.
    db.execute("CREATE TABLE other (x)")
    db.execute("CREATE INDEX facta_events_type ON other (x)")
    db.commit()
    db.close()
    before = {name for name in tables(tmp_path / "old.db")}
    with pytest.raises(facta.StoreError, match="facta_events_type"):
        facta.connect(url_of(tmp_path / "old.db"))
    assert tables(tmp_path / "old.db") == before
    db = sqlite3.connect(tmp_path / "old.db")
    assert db.execute("SELECT count(*) FROM events").fetchone() == (5,)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    db.close()


def test_event_ids_survive_as_uuids(tmp_path: Path) -> None:
    make_legacy_file(tmp_path / "old.db")
    with facta.connect(url_of(tmp_path / "old.db")) as store:
        found = store.recorder.locate([IDS[2], uuid.uuid4()])
        assert found == {IDS[2]: ("a", 2, 3)}
