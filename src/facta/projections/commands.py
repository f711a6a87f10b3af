"""``facta projections``: list a store's projections, run one, rebuild one.

Projections are user code, so ``run`` and ``rebuild`` find them by an import spec,
``--projection module:attr`` (a Projection subclass, or an instance): the only place a dotted
path appears. It is never stored; the store knows a projection by its name alone.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

import facta
from facta.connect import _scheme
from facta.events import Checkpoint
from facta.projections.checkpoints import statuses
from facta.projections.projection import Projection
from facta.projections.runner import ProjectionRunner

__all__ = ["projections"]

F = TypeVar("F", bound=Callable[..., Any])


class _ListByDefault(click.Group):
    """``facta projections URL`` lists; ``facta projections rebuild URL NAME`` rebuilds."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ListByDefault)
def projections() -> None:
    """List the store's projections (facta projections URL), or run or rebuild one."""


def _url(function: F) -> F:
    return click.argument("url", envvar="FACTA_URL")(function)


def _specs(function: F) -> F:
    return click.option(
        "-p",
        "--projection",
        "specs",
        multiple=True,
        required=True,
        metavar="MODULE:ATTR",
        help="Where the projection is: a Projection subclass (made with no arguments) or "
        "instance, e.g. myapp.read_models:Balances (repeatable; NAME picks one).",
    )(function)


@projections.command("list")
@_url
def list_projections(url: str) -> None:
    """Each projection: its checkpoint, its lag (events behind) and its state."""
    with _open(url) as store:
        found = statuses(store)
    if not found:
        click.echo("no projection has run on this store yet")
        return
    width = max(len(status.name) for status in found)
    click.echo(f"{'NAME':<{width}}  {'CHECKPOINT':>14}  {'LAG':>8}  STATE")
    for status in found:
        checkpoint = _text(status.checkpoint)
        click.echo(f"{status.name:<{width}}  {checkpoint:>14}  {status.lag:>8}  {status.state}")
        if status.error:
            click.echo(f"{'':<{width}}  {status.error}")


@projections.command()
@_url
@click.argument("name")
@_specs
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
def rebuild(url: str, name: str, specs: tuple[str, ...], batch_size: int) -> None:
    """Empty projection NAME's read model and replay the whole log into it."""
    projection = _find(name, specs)
    with (
        _open(url) as store,
        ProjectionRunner(store, projection, batch_size=batch_size) as runner,
        click.progressbar(length=1, label=f"rebuilding {name}", file=sys.stderr) as bar,
    ):

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        count = runner.rebuild(progress)
    click.echo(f"rebuilt {name!r} from {count} events, up to checkpoint {_text(runner.checkpoint)}")


@projections.command()
@_url
@click.argument("name")
@_specs
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--wait", is_flag=True, help="If NAME runs elsewhere, wait for it to stop.")
def run(url: str, name: str, specs: tuple[str, ...], poll_interval: float, wait: bool) -> None:
    """Run projection NAME: catch up, then follow the log until Ctrl-C or SIGTERM."""
    projection = _find(name, specs)
    with (
        _open(url) as store,
        ProjectionRunner(store, projection, poll_interval=poll_interval, wait=wait) as runner,
    ):
        previous = signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        click.echo(f"running {name!r} after checkpoint {_text(runner.checkpoint)}", err=True)
        try:
            runner.run()
        except KeyboardInterrupt:  # the batch in hand was rolled back: nothing half-applied
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    click.echo(f"stopped {name!r} at checkpoint {_text(runner.checkpoint)}", err=True)


@contextmanager
def _open(url: str) -> Iterator[facta.EventStore]:
    """The store at ``url``; a SQLite file that does not exist is an error, not created."""
    scheme, path = _scheme(url)
    if scheme == "sqlite" and path != ":memory:" and not Path(path).is_file():
        raise ValueError(f"no SQLite file at {path!r} (from {url})")
    with facta.connect(url) as store:
        yield store


def _find(name: str, specs: tuple[str, ...]) -> Projection[Any]:
    """The projection called ``name`` among those the specs point at."""
    if os.getcwd() not in sys.path:  # find the application's modules, as `python -m` would
        sys.path.insert(0, os.getcwd())
    found: dict[str, Projection[Any]] = {}
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"--projection {spec!r} is not MODULE:ATTR (e.g. app.models:Balances)")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"--projection {spec!r}: {e}") from e
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


def _text(checkpoint: Checkpoint) -> str:
    """``position``, or ``transaction:position`` on PostgreSQL (as ``facta log`` prints them)."""
    if checkpoint.transaction_id:
        return f"{checkpoint.transaction_id}:{checkpoint.position}"
    return str(checkpoint.position)
