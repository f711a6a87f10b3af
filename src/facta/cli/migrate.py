"""``facta migrate``: bring a store's schema up to date, ahead of time (creating it if need be)."""

from __future__ import annotations

import click

from facta import backends
from facta.cli.stores import Access, open_store
from facta.cli.urls import URL_HELP, url_argument

__all__ = ["migrate"]


@click.command(epilog=URL_HELP)
@url_argument
def migrate(url: str) -> None:
    """Bring the store's database schema up to date (safe to run at any time)."""
    with open_store(url, Access.MIGRATE) as store:
        applied = store.recorder.migrate()
    if applied:
        numbers = ", ".join(map(str, applied))
        click.echo(f"applied migration{'s' if len(applied) > 1 else ''} {numbers}")
    elif "migrate" not in backends.find(url).options:  # memory: no schema at all
        click.echo(f"{url.split('://', 1)[0]}:// stores have no schema; nothing to migrate")
    else:
        click.echo("the schema is up to date; nothing to apply")
