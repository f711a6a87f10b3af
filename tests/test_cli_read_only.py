"""Reading commands never create, migrate or write a store; run and rebuild never create one.

Each reading command (streams, show, log, check, projections) is pointed at places that hold
no facta store: a SQLite file of some other application, an empty file, a missing file, a
mistyped PostgreSQL schema. Each fails with exit code 2 and "not a facta store", and leaves
the place exactly as it was: the same bytes, no -wal, -shm, journal or lock file beside it,
no schema created.
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


SQLITE_PLACES = {"app-database": application_database, "empty-file": empty_file}


@pytest.fixture(
    params=[
        "app-database",
        "empty-file",
        "missing-file",
        pytest.param("missing-schema", marks=pytest.mark.postgres),
    ]
)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    """Each place that holds no facta store in turn."""
    directory = tmp_path / "data"
    directory.mkdir()
    if request.param == "missing-schema":
        server: str = request.getfixturevalue("postgres_url")
        schema: str = request.getfixturevalue("pg_schema")
        return missing_schema(server, schema)
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
    url = f"sqlite:///{directory / 'events.db'}"
    with facta.connect(url) as store:
        store.append("X", [Noted("hello")])
    place = sqlite_place(directory, "events.db")
    result = facta_cli(READ_COMMANDS[command](url))
    assert result.exit_code == 0, result.output
    place.unchanged()
