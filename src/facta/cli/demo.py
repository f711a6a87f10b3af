"""``facta demo``: the bank-account story (:mod:`facta.demo`) on a SQLite file."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command()
@click.option("--db", default="facta-demo.db", show_default=True, help="The SQLite file to use.")
@click.option("--fresh", is_flag=True, help="Delete the file first and start over.")
def demo(db: str, fresh: bool) -> None:
    """Run the bank-account story on a SQLite file and print what it stored."""
    from facta import demo as story  # its event classes register only when the demo runs

    story.run(db, fresh=fresh, echo=click.echo)
