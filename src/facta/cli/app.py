"""The ``facta`` group: every command, and facta's errors turned into a one-line message.

To add a command, write it in a module of this package and add it below with
``main.add_command``; it opens its store with :func:`facta.cli.stores.open_store`.
"""

from __future__ import annotations

from typing import Any

import click

from facta.cli.check import check
from facta.cli.demo import demo
from facta.cli.errors import Failed, one_line
from facta.cli.events import log, show, streams, tail
from facta.cli.inbox import inbox
from facta.cli.keys import forget, keys
from facta.cli.lifecycle import delete, prune, reopen, retain, truncate
from facta.cli.migrate import migrate
from facta.cli.projections import projections
from facta.cli.relay import relay
from facta.cli.urls import URL_HELP
from facta.errors import FactaError

__all__ = ["main"]


class _Group(click.Group):
    """Turns facta's errors, and ``ValueError`` from bad input, into exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (FactaError, ValueError) as e:
            raise Failed(one_line(e)) from e


@click.group(cls=_Group, epilog=URL_HELP)
@click.version_option(package_name="facta")
def main() -> None:
    """facta: event sourcing for Python."""


for _command in (demo, streams, show, log, tail, migrate, check, projections, relay, inbox):
    main.add_command(_command)
for _command in (forget, keys, delete, reopen, truncate, retain, prune):
    main.add_command(_command)
