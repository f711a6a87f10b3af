"""``facta check``: the database's integrity, and every stored event and snapshot read with the
application's code."""

from __future__ import annotations

import click

from facta.checking import check_store
from facta.cli.keys import key_options, provider
from facta.cli.modules import import_module
from facta.cli.progress import progress_bar
from facta.cli.stores import Access, open_store
from facta.cli.urls import URL_HELP, url_argument
from facta.codec import Codec

__all__ = ["check"]


@click.command(epilog=URL_HELP)
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
@key_options
def check(url: str, modules: tuple[str, ...], keys_file: str | None, keys_env: str | None) -> None:
    """Check the database's own integrity, then read every stored event and snapshot with the
    current code (upcast and decode), writing nothing. Prints each failure with its place,
    then a summary; exit code 1 if any failed."""
    for module in modules:
        import_module(module)
    # The application's classes and upcasters, not plain JSON: what a load would decode.
    keys = provider(keys_file, keys_env)  # personal fields open with the master key
    with (
        open_store(url, Access.READ, Codec(), keys) as store,
        progress_bar("checking") as progress,
    ):
        report = check_store(store, on_failure=lambda f: click.echo(str(f)), progress=progress)
    click.echo(report.summary())
    if not report.ok:
        click.get_current_context().exit(1)
