"""Reading commands never create, migrate or write a store; run and rebuild never create one.

Each reading command (streams, show, log, check, projections) is pointed at places that hold
no facta store: a SQLite file of some other application, an empty file, a missing file, a
mistyped PostgreSQL schema, a schema of some other application. Each fails with exit code 2
and "not a facta store", and leaves the place exactly as it was: the same bytes, no -wal,
-shm, journal or lock file beside it, no schema or table created. On an outdated store they
ask for `facta migrate` and migrate nothing.
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

import facta
from facta.cli import main


@facta.event("test.cli_read_only.Noted")
@dataclass(frozen=True)
class Noted:
    text: str


# Each reading command, given the URL.
READ_COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "streams": lambda url: ["streams", url],
    "show": lambda url: ["show", url, "X"],
    "log": lambda url: ["log", url],
    "check": lambda url: ["check", url],
    "projections": lambda url: ["projections", url],
}

# Run and rebuild, given the URL; the projection is in the module PROJECTION_MODULE.
WRITE_COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "run": lambda url: ["projections", "run", url, "tally", "-p", "tally_read_model:Tally"],
    "rebuild": lambda url: ["projections", "rebuild", url, "tally", "-p", "tally_read_model:Tally"],
}

PROJECTION_MODULE = """
from facta.projections import Projection


class Tally(Projection[object]):
    name = "tally"
"""


@dataclass
class Place:
    """Somewhere that holds no facta store, and how to tell it was left as it was."""

    url: str
    unchanged: Callable[[], None]


def facta_cli(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


def assert_not_a_facta_store(result: Result) -> None:
    """Exit code 2, no traceback, one line on stderr saying there is no facta store."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "not a facta store" in result.stderr
    assert len(result.stderr.strip("\n").splitlines()) == 1


def files(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` (and below), with its bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def sqlite_place(directory: Path, name: str) -> Place:
    """The SQLite URL of ``directory/name``; unchanged() checks every file in ``directory``."""
    before = files(directory)

    def unchanged() -> None:
        assert files(directory) == before  # the same bytes, and no -wal, -shm or lock files

    return Place(f"sqlite:///{directory / name}", unchanged)


def sqlite_store_place(directory: Path, name: str) -> Place:
    """Like :func:`sqlite_place`, for a facta store (a WAL database): a read-only connection
    to it leaves the -wal and -shm files SQLite made for it (it may not delete them), so
    unchanged() checks that the file has the same bytes and its write-ahead log is empty."""
    path = directory / name
    before = path.read_bytes()

    def unchanged() -> None:
        assert path.read_bytes() == before
        allowed = {name, f"{name}-wal", f"{name}-shm"}
        assert {found.name for found in directory.iterdir()} <= allowed
        wal = directory / f"{name}-wal"
        assert not wal.exists() or wal.read_bytes() == b""

    return Place(f"sqlite:///{path}", unchanged)


def application_database(directory: Path) -> Place:
    """A SQLite file of some other application: a table of its own, no facta store."""
    with closing(sqlite3.connect(directory / "app.db")) as db, db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers (name) VALUES ('ada')")
    return sqlite_place(directory, "app.db")


def empty_file(directory: Path) -> Place:
    (directory / "empty.db").write_bytes(b"")
    return sqlite_place(directory, "empty.db")


def missing_file(directory: Path) -> Place:
    return sqlite_place(directory, "typo.db")


def missing_schema(server: str, schema: str) -> Place:
    """A mistyped ``?schema=``: a PostgreSQL schema that does not exist."""

    def exists() -> bool:
        with psycopg.connect(server) as conn:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
            return found.fetchone() is not None

    assert not exists()

    def unchanged() -> None:
        assert not exists()

    return Place(f"{server}?schema={schema}", unchanged)


def application_schema(server: str, schema: str) -> Place:
    """A PostgreSQL schema of some other application: a table of its own, no facta store."""

    def tables() -> list[str]:
        with psycopg.connect(server) as conn:
            found = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema]
            )
            return [row[0] for row in found.fetchall()]

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".customers (id INT PRIMARY KEY, name TEXT)')
    before = tables()

    def unchanged() -> None:
        assert tables() == before == ["customers"]

    return Place(f"{server}?schema={schema}", unchanged)


SQLITE_PLACES = {"app-database": application_database, "empty-file": empty_file}
POSTGRES_PLACES = {"missing-schema": missing_schema, "app-schema": application_schema}


@pytest.fixture(
    params=[
        "app-database",
        "empty-file",
        "missing-file",
        pytest.param("missing-schema", marks=pytest.mark.postgres),
        pytest.param("app-schema", marks=pytest.mark.postgres),
    ]
)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    """Each place that holds no facta store in turn."""
    directory = tmp_path / "data"
    directory.mkdir()
    if request.param in POSTGRES_PLACES:
        server: str = request.getfixturevalue("postgres_url")
        schema: str = request.getfixturevalue("pg_schema")
        return POSTGRES_PLACES[request.param](server, schema)
    if request.param == "missing-file":
        return missing_file(directory)
    return SQLITE_PLACES[request.param](directory)


@pytest.fixture
def projection_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The working directory holds the module with the projection run and rebuild look for."""
    (tmp_path / "tally_read_model.py").write_text(textwrap.dedent(PROJECTION_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture(autouse=True)
def no_facta_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACTA_URL", raising=False)


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_on_a_place_without_a_store_fails_and_changes_nothing(
    command: str, place: Place
) -> None:
    assert_not_a_facta_store(facta_cli(READ_COMMANDS[command](place.url)))
    place.unchanged()


@pytest.mark.parametrize("command", WRITE_COMMANDS)
@pytest.mark.usefixtures("projection_module")
def test_run_and_rebuild_refuse_a_place_without_a_store_and_create_nothing(
    command: str, place: Place
) -> None:
    assert_not_a_facta_store(facta_cli(WRITE_COMMANDS[command](place.url)))
    place.unchanged()


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_leaves_a_sqlite_store_byte_for_byte_as_it_was(
    command: str, tmp_path: Path
) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    with facta.connect(f"sqlite:///{directory / 'events.db'}") as store:
        store.append("X", [Noted("hello")], facta.ANY)
    place = sqlite_store_place(directory, "events.db")
    result = facta_cli(READ_COMMANDS[command](place.url))
    assert result.exit_code == 0, result.output
    place.unchanged()


def outdated_sqlite_store(directory: Path) -> Place:
    """A SQLite store whose schema is older than this facta's (its last migration undone)."""
    path = directory / "old.db"
    with facta.connect(f"sqlite:///{path}"):
        pass
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "DELETE FROM facta_migrations WHERE version = (SELECT max(version) FROM facta_migrations)"
        )
    return sqlite_store_place(directory, "old.db")


def outdated_postgres_store(server: str, schema: str) -> Place:
    """A PostgreSQL store whose schema is older than this facta's (its last migration undone)."""
    url = f"{server}?schema={schema}"
    with facta.connect(url) as store:
        store.recorder.migrate()
    migrations = f'"{schema}".facta_migrations'

    def version() -> int:
        with psycopg.connect(server) as conn:
            row = conn.execute(f"SELECT max(version) FROM {migrations}").fetchone()
            assert row is not None
            return int(row[0])

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            f"DELETE FROM {migrations} WHERE version = (SELECT max(version) FROM {migrations})"
        )
    before = version()

    def unchanged() -> None:
        assert version() == before

    return Place(url, unchanged)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outdated(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    """A store of each backend whose schema needs a migration."""
    if request.param == "postgres":
        server: str = request.getfixturevalue("postgres_url")
        schema: str = request.getfixturevalue("pg_schema")
        return outdated_postgres_store(server, schema)
    directory = tmp_path / "data"
    directory.mkdir()
    return outdated_sqlite_store(directory)


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_on_an_outdated_store_asks_for_a_migration_and_migrates_nothing(
    command: str, outdated: Place
) -> None:
    result = facta_cli(READ_COMMANDS[command](outdated.url))
    assert result.exit_code == 2, result.output
    assert "run `facta migrate" in result.stderr
    assert len(result.stderr.strip("\n").splitlines()) == 1
    outdated.unchanged()
