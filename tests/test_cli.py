"""The ``facta`` command: the demo, streams, show, log and migrate, and how it reports errors.

That reading commands never create, migrate or write a store is in test_cli_read_only.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import facta
from facta.cli import main
from facta.codec import ZLIB
from facta.personal.data_keys import DataKeys

# The events are registered in a private registry: the CLI shows them without knowing them.
registry = facta.EventRegistry()


@facta.event("cli.Noted", registry=registry)
@dataclass(frozen=True)
class Noted:
    text: str


@pytest.fixture(autouse=True)
def no_facta_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see FACTA_URL only when they set it."""
    monkeypatch.delenv("FACTA_URL", raising=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The backends whose stores outlive a connection, so the CLI can read what a test wrote."""
    name: str = request.param
    return name


@pytest.fixture
def db_url(url: str, readable: Callable[[facta.EventStore], None]) -> str:
    """A store with two streams: "a" (2 events) and "b" (1 event), written in that order.

    Waits until the global log shows them, so ``facta log`` reads all three.
    """
    with facta.connect(url, codec=facta.Codec(registry)) as store:
        store.append("a", [Noted("first")], facta.ANY)
        store.append("b", [Noted("second")], facta.ANY)
        store.append("a", [Noted("third")], facta.ANY)
        readable(store)
    return url


class _Garbling(facta.Codec):
    """Stores events as zlib-compressed that are not: they never decode again."""

    def encode(
        self, stream_id: str, event: object, keys: DataKeys | None = None
    ) -> tuple[str, int, int, bytes]:
        type_name, version, _, _ = super().encode(stream_id, event, keys)
        return type_name, version, ZLIB, b"not zlib at all"


@pytest.fixture
def store_with_a_corrupt_event(url: str, readable: Callable[[facta.EventStore], None]) -> str:
    """Stream "a": a sound event, one whose stored bytes do not decode, a sound one.

    Waits until the global log shows them, so ``facta log`` reads all three.
    """
    with facta.connect(url, codec=facta.Codec(registry)) as store:
        store.append("a", [Noted("before")], facta.ANY)
        store.codec = _Garbling(registry)
        store.append("a", [Noted("garbled")], facta.ANY)
        store.codec = facta.Codec(registry)
        store.append("a", [Noted("after")], facta.ANY)
        readable(store)
    return url


def facta_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def lines(text: str) -> list[str]:
    return text.strip("\n").splitlines()


def columns(text: str, count: int) -> list[list[str]]:
    """The first ``count`` columns of each row of a printed table, without its header."""
    return [row.split()[:count] for row in lines(text)[1:]]


def position(checkpoint: str) -> int:
    """The position in a printed checkpoint (``42``, or ``7:42`` on PostgreSQL)."""
    return int(checkpoint.split(":")[-1])


def assert_fails_cleanly(result: Result, message: str) -> None:
    """Exit code 2, no traceback, and one line on stderr that contains ``message``."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert message in result.stderr
    assert len(lines(result.stderr)) == 1


# -- demo -------------------------------------------------------------------------------------


def test_demo_tells_the_story_and_prints_streams_and_the_log(tmp_path: Path) -> None:
    result = facta_cli("demo", "--db", str(tmp_path / "bank.db"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "opened Ada's account" in out
    assert "refused, nothing recorded: insufficient funds" in out
    assert "save raised ConcurrencyError" in out
    assert "repo.update reloaded, re-ran the command and saved" in out
    assert "STREAM" in out
    assert "POSITION" in out
    assert "bank.TransferReceived" in out


def test_demo_run_twice_continues_the_same_accounts(tmp_path: Path) -> None:
    db = str(tmp_path / "bank.db")
    facta_cli("demo", "--db", db)
    result = facta_cli("demo", "--db", db)
    assert result.exit_code == 0, result.output
    assert "Ada's account is already here, at version 5" in result.stdout
    assert "(8 earlier events not shown)" in result.stdout


def test_demo_fresh_starts_over(tmp_path: Path) -> None:
    db = str(tmp_path / "bank.db")
    facta_cli("demo", "--db", db)
    result = facta_cli("demo", "--db", db, "--fresh")
    assert result.exit_code == 0, result.output
    assert "opened Ada's account" in result.stdout
    assert "earlier events" not in result.stdout


# -- streams ----------------------------------------------------------------------------------


def test_streams_lists_every_stream_with_its_version(db_url: str) -> None:
    result = facta_cli("streams", db_url)
    assert result.exit_code == 0, result.output
    assert [line.split() for line in lines(result.stdout)] == [
        ["STREAM", "VERSION"],
        ["a", "2"],
        ["b", "1"],
    ]


def test_streams_pages_through_more_streams_than_one_page(tmp_path: Path) -> None:
    path = tmp_path / "many.db"
    with facta.connect(f"sqlite:///{path}", codec=facta.Codec(registry)) as store:
        store.append_many(
            [facta.StreamAppend(f"s{i:04}", [Noted("x")], facta.ANY) for i in range(2500)]
        )
    result = facta_cli("streams", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    rows = lines(result.stdout)[1:]
    assert [row.split()[0] for row in rows] == [f"s{i:04}" for i in range(2500)]


def test_streams_of_an_empty_store_prints_nothing() -> None:
    result = facta_cli("streams", "memory://")
    assert (result.exit_code, result.stdout) == (0, "")


# -- show -------------------------------------------------------------------------------------


def test_show_prints_each_event_with_version_position_type_schema_time_and_data(
    db_url: str,
) -> None:
    result = facta_cli("show", db_url, "a")
    assert result.exit_code == 0, result.output
    header, *rows = lines(result.stdout)
    assert header.split() == ["VERSION", "POSITION", "TYPE", "SCHEMA", "RECORDED", "AT", "DATA"]
    cells = [row.split() for row in rows]
    assert [[c[0], *c[2:4], c[5]] for c in cells] == [
        ["1", "cli.Noted", "1", '{"text":"first"}'],
        ["2", "cli.Noted", "1", '{"text":"third"}'],
    ]
    assert int(cells[0][1]) < int(cells[1][1])
    assert cells[0][4].endswith("+00:00")


def test_show_prints_compressed_events_as_json(tmp_path: Path) -> None:
    path = tmp_path / "zipped.db"
    with facta.connect(f"sqlite:///{path}", codec=facta.Codec(registry, compress_above=0)) as s:
        s.append("z", [Noted("squeezed")], facta.ANY)
    result = facta_cli("show", f"sqlite:///{path}", "z")
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[1].endswith('{"text":"squeezed"}')


def test_show_of_a_missing_stream_says_so(db_url: str) -> None:
    assert_fails_cleanly(facta_cli("show", db_url, "nope"), "stream 'nope' holds no events")


def test_show_with_one_argument_reads_the_url_from_facta_url(db_url: str) -> None:
    result = facta_cli("show", "b", env={"FACTA_URL": db_url})
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[1].endswith('{"text":"second"}')


def test_show_with_one_argument_and_no_facta_url_is_a_usage_error() -> None:
    result = facta_cli("show", "b")
    assert result.exit_code == 2
    assert "set FACTA_URL" in result.stderr


def test_show_with_metadata_prints_each_event_id_and_its_metadata(url: str) -> None:
    event_id = uuid.uuid4()
    metadata = facta.Metadata(correlation_id="order-7", user={"by": "ada"})
    with facta.connect(url, codec=facta.Codec(registry)) as store:
        store.append(
            "m", [facta.NewEvent(Noted("hi"), event_id=event_id, metadata=metadata)], facta.ANY
        )
    result = facta_cli("show", url, "m", "--metadata")
    assert result.exit_code == 0, result.output
    header, row = lines(result.stdout)
    assert header.split()[:4] == ["VERSION", "POSITION", "EVENT", "ID"]
    assert header.split()[-2:] == ["METADATA", "DATA"]
    assert row.split()[2] == str(event_id)
    assert row.split()[-2:] == ['{"correlation_id":"order-7","user":{"by":"ada"}}', '{"text":"hi"}']


def test_show_prints_an_event_that_does_not_decode_as_corrupt_and_goes_on(
    store_with_a_corrupt_event: str,
) -> None:
    result = facta_cli("show", store_with_a_corrupt_event, "a")
    assert result.exit_code == 1, result.output
    first, second, third = lines(result.stdout)[1:]
    assert first.endswith('{"text":"before"}')
    assert second.split()[:3] == ["2", "2", "cli.Noted"]
    assert "CORRUPT: stream 'a' version 2 (position 2)" in second
    assert "stored data is corrupt" in second
    assert third.endswith('{"text":"after"}')
    assert "1 event did not decode (shown as CORRUPT)" in result.stderr


# -- log --------------------------------------------------------------------------------------


def test_log_prints_every_event_in_global_order_with_its_checkpoint(db_url: str) -> None:
    result = facta_cli("log", db_url)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[0].split()[:3] == ["CHECKPOINT", "STREAM", "VERSION"]
    rows = columns(result.stdout, 3)
    assert [row[1:] for row in rows] == [["a", "1"], ["b", "1"], ["a", "2"]]
    positions = [position(row[0]) for row in rows]
    assert positions == sorted(positions)


def test_log_after_and_limit_print_one_page_and_say_where_to_continue(db_url: str) -> None:
    first, second, third = [row[0] for row in columns(facta_cli("log", db_url).stdout, 1)]
    result = facta_cli("log", db_url, "--after", first, "--limit", "1")
    assert result.exit_code == 0, result.output
    assert columns(result.stdout, 3) == [[second, "b", "1"]]
    assert f"continue with --after {second}" in result.stderr
    rest = facta_cli("log", db_url, "--after", second)
    assert columns(rest.stdout, 3) == [[third, "a", "2"]]


def test_log_after_accepts_a_transaction_and_position_pair(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pair.db'}"
    with facta.connect(url, codec=facta.Codec(registry)) as store:
        store.append("a", [Noted("1"), Noted("2")], facta.ANY)
    result = facta_cli("log", url, "--after", "0:1")
    assert columns(result.stdout, 3) == [["2", "a", "2"]]


def test_log_with_metadata_prints_each_event_id_and_its_metadata(db_url: str) -> None:
    result = facta_cli("log", db_url, "--metadata", "--limit", "1")
    assert result.exit_code == 0, result.output
    header, row = lines(result.stdout)
    assert header.split()[:5] == ["CHECKPOINT", "STREAM", "VERSION", "EVENT", "ID"]
    assert uuid.UUID(row.split()[3])
    assert row.split()[-2:] == ["{}", '{"text":"first"}']


def test_log_prints_an_event_that_does_not_decode_as_corrupt_and_goes_on(
    store_with_a_corrupt_event: str,
) -> None:
    result = facta_cli("log", store_with_a_corrupt_event)
    assert result.exit_code == 1, result.output
    rows = lines(result.stdout)[1:]
    assert [row.split()[1:3] for row in rows] == [["a", "1"], ["a", "2"], ["a", "3"]]
    assert "CORRUPT: stream 'a' version 2" in rows[1]
    assert rows[2].endswith('{"text":"after"}')
    assert "1 event did not decode" in result.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_log_on_postgres_refuses_a_position_without_its_transaction(db_url: str) -> None:
    result = facta_cli("log", db_url, "--after", "2")
    assert result.exit_code == 2
    assert "TRANSACTION:POSITION" in result.stderr


@pytest.mark.parametrize("after", ["x", "-1", "1:2:3", ""])
def test_log_rejects_a_malformed_checkpoint(after: str) -> None:
    result = facta_cli("log", "memory://", "--after", after)
    assert result.exit_code == 2
    assert "is not a checkpoint" in result.stderr


def test_url_arguments_default_to_facta_url(db_url: str) -> None:
    result = facta_cli("log", env={"FACTA_URL": db_url})
    assert result.exit_code == 0, result.output
    assert len(lines(result.stdout)) == 4


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["bank.db", "mysql://host/db", "sqlite://"])
def test_a_bad_url_gives_a_one_line_error_and_exit_code_2(bad: str) -> None:
    assert_fails_cleanly(facta_cli("streams", bad), repr(bad))


def test_an_unreachable_postgres_server_gives_a_one_line_error() -> None:
    result = facta_cli("streams", "postgresql://postgres@127.0.0.1:1/test")
    assert_fails_cleanly(result, "connection failed")


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the bytes of a database" * 100)
    result = facta_cli("streams", f"sqlite:///{path}")
    assert_fails_cleanly(result, "not a facta store (it is not a SQLite database)")


def test_a_store_newer_than_this_facta_gives_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    with facta.connect(url):
        pass
    with closing(sqlite3.connect(tmp_path / "future.db")) as db, db:
        db.execute("INSERT INTO facta_migrations (version, applied_at) VALUES (999, 0)")
    assert_fails_cleanly(facta_cli("show", url, "a"), "upgrade facta")


# -- migrate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migrate_applies_the_migrations_then_finds_the_schema_up_to_date(url: str) -> None:
    first, second = facta_cli("migrate", url), facta_cli("migrate", url)
    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert first.stdout.startswith("applied migration")
    assert second.stdout == "the schema is up to date; nothing to apply\n"
    with facta.connect(url) as store:
        assert list(store.streams()) == []


def test_migrate_memory_has_nothing_to_do() -> None:
    result = facta_cli("migrate", "memory://")
    assert (result.exit_code, result.stdout) == (
        0,
        "memory:// stores have no schema; nothing to migrate\n",
    )


# -- the installed command ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "facta"], [str(Path(sys.executable).with_name("facta"))]],
    ids=["python -m facta", "facta"],
)
def test_the_installed_command_shows_a_stream(command: list[str], db_url: str) -> None:
    done = subprocess.run(
        [*command, "show", db_url, "b"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[1].endswith('{"text":"second"}')


def test_the_installed_command_reports_bad_input_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "facta", "streams", "nonsense"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: an event store URL looks like SCHEME://")
    assert "Traceback" not in done.stderr
