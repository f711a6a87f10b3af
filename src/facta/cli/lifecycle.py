"""``facta delete``, ``reopen``, ``truncate``, ``retain`` and ``prune``: a stream's lifecycle.

Each changes a store that exists (never creates one); ``facta.lifecycle`` describes the model.
"""

from __future__ import annotations

import re
from datetime import timedelta

import click

from facta.appending import ExpectedVersion
from facta.cli.stores import Access, open_store
from facta.cli.urls import URL_HELP, url_and, url_argument

__all__ = ["delete", "prune", "reopen", "retain", "truncate"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d`` or ``2w`` as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None or float(match[1]) <= 0:
        raise click.BadParameter(f"{text!r} is not an age such as 90s, 15m, 12h, 30d or 2w")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@click.command(epilog=URL_HELP)
@url_and("stream")
@click.option(
    "--expected",
    type=int,
    default=None,
    help="The version the stream must be at (default: any).",
)
@click.option("--hard", is_flag=True, help="Remove its events and snapshots too.")
@click.option("--reuse", is_flag=True, help="With --hard: let the stream id start anew.")
@click.option("--reason", default=None, help="Recorded in the deletion's marker event.")
def delete(
    url: str, stream: str, expected: int | None, hard: bool, reuse: bool, reason: str | None
) -> None:
    """Delete a stream (soft: its events stay, loads and appends are refused)."""
    with open_store(url, Access.EXISTING) as store:
        wanted = ExpectedVersion.ANY if expected is None else expected
        result = store.delete_stream(stream, wanted, hard=hard, reuse=reuse, reason=reason)
    how = "hard-deleted" + (" (its id may be reused)" if reuse else "") if hard else "deleted"
    click.echo(f"{how} stream {stream!r} at version {result.version}")


@click.command(epilog=URL_HELP)
@url_and("stream")
@click.option("--reason", default=None, help="Recorded in the reopening's marker event.")
def reopen(url: str, stream: str, reason: str | None) -> None:
    """Open a soft-deleted stream again."""
    with open_store(url, Access.EXISTING) as store:
        result = store.reopen_stream(stream, reason=reason)
    click.echo(f"reopened stream {stream!r} at version {result.version}")


@click.command(epilog=URL_HELP)
@url_and("stream")
@click.option("--before", type=int, required=True, help="The first version to keep.")
def truncate(url: str, stream: str, before: int) -> None:
    """Remove a stream's events before a version (an aggregate's: up to its newest snapshot)."""
    with open_store(url, Access.EXISTING) as store:
        removed = store.truncate_stream(stream, before)
    click.echo(f"removed {removed} event{'s' * (removed != 1)} of stream {stream!r}")


@click.command(epilog=URL_HELP)
@url_and("stream")
@click.option("--max-age", default=None, help="Keep events younger than this (30d, 12h...).")
@click.option("--max-count", type=int, default=None, help="Keep this many newest events.")
def retain(url: str, stream: str, max_age: str | None, max_count: int | None) -> None:
    """Set a stream's retention (applied by `facta prune`); no option lifts it."""
    age = None if max_age is None else parse_age(max_age)
    with open_store(url, Access.EXISTING) as store:
        store.set_retention(stream, max_age=age, max_count=max_count)
    limits = [f"events younger than {max_age}"] * (age is not None)
    limits += [f"the newest {max_count}"] * (max_count is not None)
    click.echo(f"stream {stream!r} keeps {' and '.join(limits) or 'every event'}")


@click.command(epilog=URL_HELP)
@url_argument
def prune(url: str) -> None:
    """Apply every stream's retention: remove the events it no longer keeps."""
    with open_store(url, Access.EXISTING) as store:
        done = store.prune()
    for pruned in done:
        held = f" ({pruned.held_back} more kept until a newer snapshot)" * bool(pruned.held_back)
        click.echo(f"{pruned.stream_id}: removed {pruned.removed}{held}")
    click.echo(f"pruned {sum(p.removed for p in done)} events in {len(done)} streams")
