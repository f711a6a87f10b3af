"""A progress bar on stderr, driven by the ``progress(done, total)`` callbacks facta takes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import click

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback that draws a bar on stderr.

    The bar appears at the first call, once the store has answered: an error opening the
    store is then the only line on stderr.
    """
    with ExitStack() as stack:
        bars: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(
                    stack.enter_context(click.progressbar(length=1, label=label, file=sys.stderr))
                )
            bar = bars[0]
            bar.length = total
            bar.update(done - bar.pos)

        yield progress
