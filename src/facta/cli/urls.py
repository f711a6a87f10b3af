"""The store URL on the command line: an argument that defaults to ``$FACTA_URL``.

Only the command line reads ``FACTA_URL``; the library never reads the environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

__all__ = ["URL_HELP", "is_postgres", "url_and", "url_argument"]

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = "URL is memory://, sqlite:///file.db or postgresql://...; it defaults to $FACTA_URL."


def url_argument(function: F) -> F:
    """The store URL argument, read from ``$FACTA_URL`` when it is left out."""
    return click.argument("url", envvar="FACTA_URL")(function)


def url_and(name: str) -> Callable[[F], F]:
    """Arguments ``[URL] NAME``: given one argument, it is NAME and the URL is ``$FACTA_URL``.

    (Click cannot default a leading argument from the environment when a required one
    follows it, so the two are told apart here.)
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def command(**kwargs: Any) -> Any:
            url, value = kwargs.pop("url"), kwargs.pop(name)
            if value is None:
                url, value = os.environ.get("FACTA_URL", ""), url
                if not url:
                    raise click.UsageError(
                        f"give URL and {name.upper()} (or set FACTA_URL and give {name.upper()})"
                    )
            return function(url=url, **{name: value}, **kwargs)

        command = click.argument(name, required=False, metavar=name.upper())(command)
        return cast(F, click.argument("url", metavar="[URL]")(command))

    return decorate


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL store (whose checkpoints carry a transaction id)."""
    return url.split("://", 1)[0].lower() in ("postgresql", "postgres")
