"""``facta streams``, ``show``, ``log`` and ``tail``: what a store holds, as stored, read-only.

Events print as plain JSON, without the application's event classes. A stored event that
does not decode is printed as CORRUPT, with its place and the error, and the listing goes
on; the command then exits with code 1.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator

import click
import msgspec

from facta.cli.checkpoints import checkpoint_text, parse_checkpoint
from facta.cli.errors import Failed, one_line
from facta.cli.stores import Access, open_store, replica_option
from facta.cli.urls import URL_HELP, is_postgres, url_and, url_argument
from facta.errors import DecodeError, UnknownEventType, UpcastError
from facta.events import Checkpoint
from facta.ids import validate_stream_id
from facta.records import StoredEvent
from facta.store import DEFAULT_BATCH_SIZE, EventStore

__all__ = ["log", "show", "streams", "tail"]

_METADATA_HELP = "Also print each event's id and metadata."


@click.command(epilog=URL_HELP)
@url_argument
def streams(url: str) -> None:
    """List every stream with its version, ordered by stream id."""
    with open_store(url, Access.READ) as store:
        for count, (stream_id, version) in enumerate(store.streams()):
            if count == 0:
                click.echo(f"{'STREAM':<36}  {'VERSION':>7}")
            click.echo(f"{stream_id:<36}  {version:>7}")


@click.command(epilog=URL_HELP)
@url_and("stream")
@click.option("--metadata", is_flag=True, help=_METADATA_HELP)
def show(url: str, stream: str, metadata: bool) -> None:
    """Print each event of a stream: version, position, type, schema version, time, data."""
    validate_stream_id(stream)
    table = _Table(("VERSION", "POSITION"), metadata)
    with open_store(url, Access.READ) as store:
        for row in _stream_rows(store, stream):
            table.echo(store, row, row.version, row.position)
        info = store.stream_info(stream) if table.shown == 0 else None
    if table.shown == 0:
        if info is not None and info.hard_deleted:
            raise Failed(f"stream {stream!r} was hard-deleted: its events are gone from {url}")
        raise Failed(f"stream {stream!r} holds no events in {url}")
    table.finish()


@click.command(epilog=URL_HELP)
@url_argument
@click.option(
    "--after",
    default="0",
    show_default=True,
    help="Start after this checkpoint: a position, or TRANSACTION:POSITION as printed.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many events.")
@click.option("--metadata", is_flag=True, help=_METADATA_HELP)
@replica_option
def log(url: str, after: str, limit: int | None, metadata: bool, replicas: tuple[str, ...]) -> None:
    """Print the global log: every stream's events in global order, with checkpoints."""
    start = _start(url, after)
    table = _Table(("CHECKPOINT", "STREAM", "VERSION"), metadata)
    last = start
    with open_store(url, Access.READ, replicas=replicas) as store:
        for row in _log_rows(store, start, limit):
            last = row.checkpoint
            table.echo(store, row, checkpoint_text(last), row.stream_id, row.version)
    if limit is not None and table.shown == limit:
        click.echo(f"(limit reached; continue with --after {checkpoint_text(last)})", err=True)
    table.finish()


@click.command(epilog=URL_HELP)
@url_argument
@click.option(
    "--after",
    help="Start after this checkpoint (a position, or TRANSACTION:POSITION as printed; 0: the "
    "start of the log) instead of the end of the log.",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between looks at the log when no wake-up comes.",
)
@click.option("--metadata", is_flag=True, help=_METADATA_HELP)
@replica_option
def tail(
    url: str, after: str | None, poll_interval: float, metadata: bool, replicas: tuple[str, ...]
) -> None:
    """Print events live as they are committed, in global order, until Ctrl-C or SIGTERM."""
    table = _Table(("CHECKPOINT", "STREAM", "VERSION"), metadata)
    with open_store(url, Access.READ, replicas=replicas) as store:
        recorder = store.recorder
        position = recorder.last_checkpoint() if after is None else _start(url, after)
        click.echo(f"following the log after {checkpoint_text(position)}", err=True)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                rows = recorder.read_all(position, None, DEFAULT_BATCH_SIZE)
                for row in rows:
                    position = row.checkpoint
                    table.echo(store, row, checkpoint_text(position), row.stream_id, row.version)
                sys.stdout.flush()
                if len(rows) < DEFAULT_BATCH_SIZE:
                    recorder.wait_for_events(poll_interval)
        except KeyboardInterrupt:
            click.echo(f"stopped after {checkpoint_text(position)}", err=True)
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _start(url: str, after: str) -> Checkpoint:
    """The checkpoint ``--after`` names; a bare position is refused on PostgreSQL."""
    start = parse_checkpoint(after)
    if is_postgres(url) and start.position and not start.transaction_id:
        raise click.BadParameter(
            "on PostgreSQL a checkpoint is TRANSACTION:POSITION (copy it from the CHECKPOINT "
            "column): the log is ordered by the pair, so a position alone is ambiguous",
            param_hint="--after",
        )
    return start


# -- reading rows: the recorder's, so that one that does not decode stops nothing -----------


def _stream_rows(store: EventStore, stream_id: str) -> Iterator[StoredEvent]:
    version = 1
    while True:
        rows = store.recorder.read_stream(stream_id, version, None, DEFAULT_BATCH_SIZE)
        yield from rows
        if len(rows) < DEFAULT_BATCH_SIZE:
            return
        version = rows[-1].version + 1


def _log_rows(store: EventStore, after: Checkpoint, limit: int | None) -> Iterator[StoredEvent]:
    remaining = limit
    while remaining is None or remaining > 0:
        page = DEFAULT_BATCH_SIZE if remaining is None else min(DEFAULT_BATCH_SIZE, remaining)
        rows = store.recorder.read_all(after, None, page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].checkpoint
        if remaining is not None:
            remaining -= len(rows)


# -- printing ---------------------------------------------------------------------------------

_WIDTHS = {"VERSION": 7, "POSITION": 8, "CHECKPOINT": 10, "STREAM": -36}  # < 0: left-aligned


class _Table:
    """Events, one a line: the leading columns, then [event id], type, schema, time,
    [metadata] and data. Counts what it printed and what did not decode."""

    def __init__(self, columns: tuple[str, ...], metadata: bool) -> None:
        self.columns, self.metadata = columns, metadata
        self.shown = self.corrupt = 0

    def echo(self, store: EventStore, row: StoredEvent, *lead: object) -> None:
        if self.shown == 0:
            click.echo(self._header())
        self.shown += 1
        try:
            event = store.decode(row)
        except (DecodeError, UnknownEventType, UpcastError) as e:
            self.corrupt += 1
            data, meta = f"CORRUPT: {one_line(e)}", "?"
        else:
            data = msgspec.json.encode(event.data).decode()
            meta = msgspec.json.encode(event.metadata).decode()
        cells = [_cell(str(v), _WIDTHS[name]) for name, v in zip(self.columns, lead, strict=True)]
        if self.metadata:
            cells.append(str(row.event_id))
        cells += [
            f"{row.type:<28}",
            f"{row.schema_version:>6}",
            row.recorded_at.isoformat(timespec="milliseconds"),
        ]
        if self.metadata:
            cells.append(meta)
        click.echo("  ".join([*cells, data]))

    def finish(self) -> None:
        """Exit with code 1, saying so on stderr, if an event did not decode."""
        if self.corrupt:
            events = "event" if self.corrupt == 1 else "events"
            click.echo(
                f"{self.corrupt} {events} did not decode (shown as CORRUPT); "
                "`facta check URL` lists every stored event that does not",
                err=True,
            )
            click.get_current_context().exit(1)

    def _header(self) -> str:
        cells = [_cell(name, _WIDTHS[name]) for name in self.columns]
        if self.metadata:
            cells.append(f"{'EVENT ID':<36}")
        cells += [f"{'TYPE':<28}", "SCHEMA", f"{'RECORDED AT':<29}"]
        if self.metadata:
            cells.append("METADATA")
        return "  ".join([*cells, "DATA"])


def _cell(text: str, width: int) -> str:
    return text.rjust(width) if width > 0 else text.ljust(-width)
