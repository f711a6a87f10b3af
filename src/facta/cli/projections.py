"""``facta projections``: list a store's projections, run one, rebuild one.

Projections are user code, so ``run`` and ``rebuild`` find them by an import spec,
``--projection module:attr`` (a Projection subclass, or an instance): the only place a dotted
path appears. It is never stored; the store knows a projection by its name alone. Listing
reads the store only; running and rebuilding write to a store that must exist already.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from facta.cli.checkpoints import checkpoint_text
from facta.cli.keys import key_options, provider
from facta.cli.modules import import_attribute
from facta.cli.progress import progress_bar
from facta.cli.stores import Access, open_store, replica_option
from facta.cli.urls import URL_HELP, url_and, url_argument
from facta.codec import Codec
from facta.errors import StoreError
from facta.projections import OnError, Projection, ProjectionRunner, SlicedRunner, statuses
from facta.records import SlicedStatus
from facta.store import EventStore

__all__ = ["projections"]

F = TypeVar("F", bound=Callable[..., Any])


class _ListByDefault(click.Group):
    """``facta projections URL`` lists; ``facta projections rebuild URL NAME`` rebuilds."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ListByDefault, epilog=URL_HELP)
def projections() -> None:
    """List the store's projections (facta projections URL), run or rebuild one, or show the
    slice ranges of sliced ones (status)."""


@projections.command("list", epilog=URL_HELP)
@url_argument
@replica_option
def list_projections(url: str, replicas: tuple[str, ...]) -> None:
    """Each projection: its checkpoint, its lag (events behind), its dead letters and state."""
    with open_store(url, Access.READ, replicas=replicas) as store:
        found = statuses(store)
        behind = _replica_lag(store)
        sliced = store.recorder.sliced_statuses()
        held_back = _reader_lag(store) if found or sliced else None
    for projection in sliced:
        click.echo(
            f"{projection.name}: sliced, {projection.state}, {len(projection.workers)} workers, "
            f"lag {projection.lag} (facta projections status URL {projection.name})"
        )
    if not found:
        if not sliced:
            click.echo("no projection has run on this store yet")
        elif held_back:
            click.echo(f"note: {held_back}")
        for line in behind:
            click.echo(f"note: {line}")
        return
    width = max(len(status.name) for status in found)
    click.echo(f"{'NAME':<{width}}  {'CHECKPOINT':>14}  {'LAG':>8}  {'PARKED':>6}  STATE")
    for status in found:
        checkpoint = checkpoint_text(status.checkpoint)
        click.echo(
            f"{status.name:<{width}}  {checkpoint:>14}  {status.lag:>8}  "
            f"{status.dead_letters:>6}  {status.state}"
        )
        if status.error:
            click.echo(f"{'':<{width}}  {status.error}")
    if held_back:
        click.echo(f"note: {held_back}")
    for line in behind:
        click.echo(f"note: {line}")


def _reader_lag(store: EventStore) -> str | None:
    """Who holds the global log's readers back, where the backend can tell (PostgreSQL's
    ``reader_lag``): projections cannot read those events yet. None when nothing is."""
    reader_lag = getattr(store.recorder, "reader_lag", None)
    if reader_lag is None:
        return None
    lag = reader_lag()
    return str(lag) if getattr(lag, "held_back", 0) > 0 else None


def _replica_lag(store: EventStore) -> list[str]:
    """How far each replica trails the primary (PostgreSQL's ``replica_lag``), one line
    each: runners reading there see the log that much later."""
    replica_lag = getattr(store.recorder, "replica_lag", None)
    if replica_lag is None:
        return []
    try:
        return [str(lag) for lag in replica_lag()]
    except StoreError as e:  # a replica down: the projections' list still stands
        return [f"replica lag unknown: {e}"]


def _runner_options(function: F) -> F:
    """Where the projections are, and how a runner reads the log and meets failing events."""
    options = [
        click.option(
            "--replica",
            "replicas",
            multiple=True,
            metavar="URL",
            help="A hot standby of the store's PostgreSQL server: the runner reads the log "
            "there (its read model and checkpoint stay on URL). Repeat for several.",
        ),
        click.option(
            "-p",
            "--projection",
            "specs",
            multiple=True,
            required=True,
            metavar="MODULE:ATTR",
            help="Where the projection is: a Projection subclass (made with no arguments) or "
            "instance, e.g. myapp.read_models:Balances (repeatable; NAME picks one).",
        ),
        click.option(
            "--batch-size",
            default=500,
            show_default=True,
            type=click.IntRange(min=1),
            help="Events applied per transaction.",
        ),
        click.option(
            "--dead-letter",
            is_flag=True,
            help="Park an event whose handler fails in the projection's dead letters and go on, "
            "instead of stopping at it.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return key_options(function)  # personal fields open with the master key


@projections.command(epilog=URL_HELP)
@url_and("name")
@_runner_options
@click.option(
    "--sliced",
    is_flag=True,
    help="NAME is a sliced projection: reset all its ranges (waiting for its running workers' "
    "batches in hand) and replay those this process gets; running workers replay theirs.",
)
@click.option(
    "--ranges",
    default=16,
    show_default=True,
    type=click.IntRange(min=1, max=1024),
    help="Slice ranges of a sliced projection (as its workers have).",
)
def rebuild(
    url: str,
    name: str,
    specs: tuple[str, ...],
    batch_size: int,
    dead_letter: bool,
    keys_file: str | None,
    keys_env: str | None,
    replicas: tuple[str, ...],
    sliced: bool,
    ranges: int,
) -> None:
    """Empty projection NAME's read model and replay the whole log into it."""
    projection = _find(name, specs)
    keys = provider(keys_file, keys_env)
    with open_store(url, Access.EXISTING, Codec(), keys, replicas) as store:
        options: dict[str, Any] = {"batch_size": batch_size, "on_error": _on_error(dead_letter)}
        runner = (
            SlicedRunner(store, projection, ranges=ranges, **options)
            if sliced
            else ProjectionRunner(store, projection, **options)
        )
        with runner, progress_bar(f"rebuilding {name}") as progress:
            count = runner.rebuild(progress)
            parked = _parked(runner, dead_letter)
            held = len(runner.held) if isinstance(runner, SlicedRunner) else 0
    if sliced:
        click.echo(
            f"rebuilt {name!r}: reset its {ranges} ranges, replayed {count} events of the {held} it holds{parked}"
        )
        return
    click.echo(
        f"rebuilt {name!r} from {count} events, up to checkpoint "
        f"{checkpoint_text(runner.checkpoint)}{parked}"
    )


@projections.command(epilog=URL_HELP)
@url_and("name")
@_runner_options
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--wait", is_flag=True, help="If NAME runs elsewhere, wait for it to stop.")
@click.option(
    "--sliced",
    is_flag=True,
    help="Run as one worker of NAME: every process started so with the same NAME shares its "
    "slice ranges (PostgreSQL).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Start this many --sliced worker processes here and wait for them.",
)
@click.option(
    "--ranges",
    default=16,
    show_default=True,
    type=click.IntRange(min=1, max=1024),
    help="Slice ranges a sliced projection is split into (the same for every worker).",
)
@click.option(
    "--lease-seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="How long a worker's ranges outlive it before the others take them over.",
)
def run(
    url: str,
    name: str,
    specs: tuple[str, ...],
    batch_size: int,
    dead_letter: bool,
    keys_file: str | None,
    keys_env: str | None,
    replicas: tuple[str, ...],
    poll_interval: float,
    wait: bool,
    sliced: bool,
    workers: int | None,
    ranges: int,
    lease_seconds: float,
) -> None:
    """Run projection NAME: catch up, then follow the log until Ctrl-C or SIGTERM."""
    if workers is not None:
        _start_workers(workers, sys.argv[1:])
        return
    projection = _find(name, specs)
    keys = provider(keys_file, keys_env)
    with open_store(url, Access.EXISTING, Codec(), keys, replicas) as store:
        runner: ProjectionRunner[Any]
        if sliced:
            runner = SlicedRunner(
                store,
                projection,
                ranges=ranges,
                lease_seconds=lease_seconds,
                batch_size=batch_size,
                on_error=_on_error(dead_letter),
                poll_interval=poll_interval,
                wait=wait,
            )
        else:
            runner = ProjectionRunner(
                store,
                projection,
                batch_size=batch_size,
                on_error=_on_error(dead_letter),
                poll_interval=poll_interval,
                wait=wait,
            )
        with runner:
            previous = signal.signal(signal.SIGTERM, lambda *_: runner.stop())
            where = (
                f"as worker {runner.worker} of {ranges} ranges"
                if isinstance(runner, SlicedRunner)
                else f"after checkpoint {checkpoint_text(runner.checkpoint)}"
            )
            click.echo(f"running {name!r} {where}", err=True)
            try:
                runner.run()
            except KeyboardInterrupt:  # the batch in hand was rolled back: nothing half-applied
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
            parked = _parked(runner, dead_letter)
    where = "" if sliced else f" at checkpoint {checkpoint_text(runner.checkpoint)}"
    click.echo(f"stopped {name!r}{where}{parked}", err=True)


def _start_workers(count: int, arguments: list[str]) -> None:
    """Run ``count`` copies of this command as ``--sliced`` workers; stop them on SIGTERM or
    Ctrl-C; fail if one of them fails."""
    arguments = _without_workers(arguments)
    command = [sys.executable, "-m", "facta", *arguments, "--sliced"]
    children = [subprocess.Popen(command) for _ in range(count)]

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:  # the workers got the same Ctrl-C
        codes = [child.wait() for child in children]
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [code for code in codes if code not in (0, -signal.SIGTERM)]
    if failed:
        raise click.ClickException(f"{len(failed)} of {count} workers failed (exit {failed})")


def _without_workers(arguments: list[str]) -> list[str]:
    """The command line with its ``--workers N`` (or ``--workers=N``) and ``--sliced`` left out."""
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--workers":
            skip = True
        elif not argument.startswith("--workers=") and argument != "--sliced":
            kept.append(argument)
    return kept


@projections.command(epilog=URL_HELP)
@url_argument
@click.argument("name", required=False)
def status(url: str, name: str | None) -> None:
    """Each sliced projection (or NAME): its workers, and each slice range's holder, token,
    checkpoint and lag."""
    with open_store(url, Access.READ) as store:
        found = [s for s in store.recorder.sliced_statuses() if name in (None, s.name)]
    if not found:
        click.echo("no sliced projection has run on this store" + (f" as {name!r}" if name else ""))
        return
    for sliced in found:
        _show(sliced)


def _show(sliced: SlicedStatus) -> None:
    workers = len(sliced.workers)
    click.echo(
        f"{sliced.name}: {sliced.state}, {workers} worker{'s' * (workers != 1)}, "
        f"{len(sliced.ranges)} ranges, lag {sliced.lag}, {sliced.dead_letters} parked"
    )
    if sliced.error:
        click.echo(f"  {sliced.error}")
    click.echo(f"  {'SLICES':>9}  {'CHECKPOINT':>14}  {'LAG':>8}  {'TOKEN':>5}  OWNER")
    for r in sliced.ranges:
        owner = r.owner if r.owner in sliced.workers else f"({r.owner or 'free'})"
        click.echo(
            f"  {r.first:>4}-{r.last:<4}  {checkpoint_text(r.checkpoint):>14}  {r.lag:>8}  "
            f"{r.token:>5}  {owner}"
        )


def _on_error(dead_letter: bool) -> OnError:
    return OnError.DEAD_LETTER if dead_letter else OnError.STOP


def _parked(runner: ProjectionRunner[Any], dead_letter: bool) -> str:
    """How many events the projection's dead letters hold, to end a message; "" if none."""
    count = len(runner.dead_letters()) if dead_letter else 0
    if not count:
        return ""
    return f"; its dead letters hold {count} event{'s' if count > 1 else ''}"


def _find(name: str, specs: tuple[str, ...]) -> Projection[Any]:
    """The projection called ``name`` among those the specs point at."""
    found: dict[str, Projection[Any]] = {}
    for spec in specs:
        target = import_attribute(spec, "--projection")
        projection = target() if isinstance(target, type) else target
        if not isinstance(projection, Projection):
            raise ValueError(
                f"--projection {spec!r} is a {type(projection).__qualname__}, not a "
                "facta.projections.Projection (the command line runs sync projections)"
            )
        found[getattr(projection, "name", "")] = projection
    if name not in found:
        known = ", ".join(repr(n) for n in sorted(found)) or "none"
        raise ValueError(f"no projection named {name!r} among the --projection ones ({known})")
    return found[name]
