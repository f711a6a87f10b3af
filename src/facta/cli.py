"""The ``facta`` command: the demo, and a look at what a store holds.

Each command is one function below: to add one, decorate a function with ``@main.command()``
(``@url_argument`` gives it the store URL, ``_open(url)`` a store that reads any events as
JSON). The group turns facta's errors (and ``ValueError`` from bad input) into a one-line
message and exit code 2. Only this module reads ``FACTA_URL``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

import facta
from facta.codec import ZLIB, Codec
from facta.connect import _scheme
from facta.errors import DecodeError, FactaError
from facta.projections.commands import projections

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = "URL is memory://, sqlite:///file.db or postgresql://...; it defaults to $FACTA_URL."


class Failed(click.ClickException):
    """A user-caused error: one line on stderr and exit code 2, never a traceback."""

    exit_code = 2


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (FactaError, ValueError) as e:  # driver messages may span lines: join them
            raise Failed(re.sub(r"\s*\n\s*", " ", str(e).strip())) from e


@click.group(cls=_Group, epilog=URL_HELP)
@click.version_option(package_name="facta")
def main() -> None:
    """facta: event sourcing for Python."""


def url_argument(function: F) -> F:
    """The store URL argument, read from $FACTA_URL when it is left out."""
    return click.argument("url", envvar="FACTA_URL")(function)


# -- commands ---------------------------------------------------------------------------------


@main.command()
@click.option("--db", default="facta-demo.db", show_default=True, help="The SQLite file to use.")
@click.option("--fresh", is_flag=True, help="Delete the file first and start over.")
def demo(db: str, fresh: bool) -> None:
    """Run the bank-account story on a SQLite file and print what it stored."""
    from facta import demo as story

    story.run(db, fresh=fresh, echo=click.echo)


@main.command(epilog=URL_HELP)
@url_argument
def streams(url: str) -> None:
    """List every stream with its version, ordered by stream id."""
    with _open(url) as store:
        for count, (stream_id, version) in enumerate(store.streams()):
            if count == 0:
                click.echo(f"{'STREAM':<36}  {'VERSION':>7}")
            click.echo(f"{stream_id:<36}  {version:>7}")


@main.command(epilog=URL_HELP)
@click.argument("url", metavar="[URL]")
@click.argument("stream", required=False, metavar="STREAM")
def show(url: str, stream: str | None) -> None:
    """Print each event of a stream: version, position, type, schema version, time, data."""
    if stream is None:  # one argument: the stream; the URL comes from $FACTA_URL
        url, stream = os.environ.get("FACTA_URL", ""), url
        if not url:
            raise click.UsageError("give URL and STREAM (or set FACTA_URL and give STREAM)")
    with _open(url) as store:
        shown = 0
        for event in store.read_stream(stream):
            if shown == 0:
                click.echo(_header(_SHOW))
            click.echo(_line(_SHOW, event, event.version, event.position))
            shown += 1
    if shown == 0:
        raise Failed(f"stream {stream!r} holds no events in {url}")


@main.command(epilog=URL_HELP)
@url_argument
@click.option(
    "--after",
    default="0",
    show_default=True,
    help="Start after this checkpoint: a position, or TRANSACTION:POSITION as printed.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many events.")
def log(url: str, after: str, limit: int | None) -> None:
    """Print the global log: every stream's events in global order, with checkpoints."""
    start = _checkpoint(after)
    if _scheme(url)[0] == "postgresql" and start.position and not start.transaction_id:
        raise click.BadParameter(
            "on PostgreSQL a checkpoint is TRANSACTION:POSITION (copy it from the CHECKPOINT "
            "column): the log is ordered by the pair, so a position alone is ambiguous",
            param_hint="--after",
        )
    with _open(url) as store:
        shown, last = 0, facta.Checkpoint()
        for event in store.read_all(start, limit=limit):
            if shown == 0:
                click.echo(_header(_LOG))
            last = event.checkpoint
            click.echo(_line(_LOG, event, _text(last), event.stream_id, event.version))
            shown += 1
    if limit is not None and shown == limit:
        click.echo(f"(limit reached; continue with --after {_text(last)})", err=True)


@main.command(epilog=URL_HELP)
@url_argument
def migrate(url: str) -> None:
    """Bring the store's database schema up to date (safe to run at any time)."""
    scheme, path = _scheme(url)
    if scheme == "memory":
        click.echo("memory:// stores have no schema; nothing to migrate")
        return
    if scheme == "sqlite":
        before = _sqlite_schema_version(path)
        with facta.connect(url):  # opening a SQLite store applies its pending migrations
            pass
        applied = list(range(before + 1, _sqlite_schema_version(path) + 1))
    else:
        from facta.backends.postgres import migrate as migrate_postgres

        applied = migrate_postgres(url)
    if applied:
        click.echo(f"applied migration{'s' if len(applied) > 1 else ''} {_join(applied)}")
    else:
        click.echo("the schema is up to date; nothing to apply")


@main.command(epilog=URL_HELP)
@url_argument
@click.option(
    "-i",
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import this module first, to register the event classes, upcasters and aggregates "
    "to check with (repeatable; modules of the working directory are found).",
)
def check(url: str, modules: tuple[str, ...]) -> None:
    """Read every stored event and snapshot with the current code (upcast and decode), writing
    nothing. Prints each failure with its place, then a summary; exit code 1 if any failed."""
    import importlib
    import sys

    from facta.checking import check_store

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise Failed(f"cannot import {module!r}: {e}") from e
    with _open(url) as store, click.progressbar(length=1, label="checking", file=sys.stderr) as bar:
        store.codec = Codec()  # the application's classes and upcasters, not plain JSON

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        report = check_store(store, on_failure=lambda f: click.echo(str(f)), progress=progress)
    click.echo(report.summary())
    if not report.ok:
        click.get_current_context().exit(1)


# -- helpers ----------------------------------------------------------------------------------


@contextmanager
def _open(url: str) -> Iterator[facta.EventStore]:
    """Open a store to read it. A missing SQLite file or PostgreSQL schema is an error: a
    read never creates (or migrates) a store, so a typo in the URL cannot make a new one."""
    scheme, path = _scheme(url)
    store: facta.EventStore
    if scheme == "sqlite" and path != ":memory:" and not Path(path).is_file():
        raise Failed(f"no SQLite file at {path!r} (from {url})")
    if scheme == "postgresql":
        from facta.backends.postgres import PostgresEventStore

        store = PostgresEventStore(url, _StoredJSON(), migrate=False)
    else:
        store = facta.connect(url, codec=_StoredJSON())
    with store:
        yield store


class _StoredJSON(Codec):
    """Decodes stored events into plain JSON values, so the CLI shows any store's events as
    stored, without the application's event classes."""

    def decode(
        self, type_name: str, schema_version: int, encoding: int, data: bytes, where: str = ""
    ) -> Any:
        try:
            return msgspec.json.decode(zlib.decompress(data) if encoding == ZLIB else data)
        except (zlib.error, msgspec.DecodeError) as e:
            raise DecodeError(f"{where}type {type_name!r}: stored data is corrupt: {e}") from e


_WIDTHS = {"VERSION": 7, "POSITION": 8, "CHECKPOINT": 10, "STREAM": -36}  # < 0: left-aligned
_SHOW = ("VERSION", "POSITION")
_LOG = ("CHECKPOINT", "STREAM", "VERSION")


def _header(columns: tuple[str, ...]) -> str:
    lead = [_cell(name, _WIDTHS[name]) for name in columns]
    return "  ".join([*lead, f"{'TYPE':<28}", "SCHEMA", f"{'RECORDED AT':<29}", "DATA"])


def _line(columns: tuple[str, ...], event: facta.RecordedEvent, *values: object) -> str:
    """One event on one line: the leading columns, then type, schema, time and data."""
    lead = [_cell(str(v), _WIDTHS[name]) for name, v in zip(columns, values, strict=True)]
    return "  ".join(
        [
            *lead,
            f"{event.type:<28}",
            f"{event.schema_version:>6}",
            event.recorded_at.isoformat(timespec="milliseconds"),
            msgspec.json.encode(event.data).decode(),
        ]
    )


def _cell(text: str, width: int) -> str:
    return text.rjust(width) if width > 0 else text.ljust(-width)


def _checkpoint(text: str) -> facta.Checkpoint:
    """``"42"`` or ``"7:42"`` (transaction:position, as PostgreSQL checkpoints print)."""
    parts = text.split(":")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 0:
        raise click.BadParameter(
            f"{text!r} is not a checkpoint: give a position (42) or TRANSACTION:POSITION (7:42)",
            param_hint="--after",
        )
    return facta.Checkpoint(*numbers) if len(numbers) == 2 else facta.Checkpoint(0, numbers[0])


def _text(checkpoint: facta.Checkpoint) -> str:
    """A checkpoint as --after reads it: the bare position when there is no transaction id."""
    transaction_id, position = checkpoint
    return f"{transaction_id}:{position}" if transaction_id else str(position)


def _join(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


def _sqlite_schema_version(path: str) -> int:
    """The schema version (``PRAGMA user_version``) of a SQLite file; 0 if there is none yet."""
    if path == ":memory:" or not Path(path).is_file():
        return 0
    try:
        with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as db:
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        raise Failed(f"cannot read SQLite file {path!r}: {e}") from e
    return version


# facta projections [list|run|rebuild]: in facta/projections/commands.py
main.add_command(projections)
