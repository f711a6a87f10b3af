"""Reading ahead, for async readers: the next page is asked for while this one is used.

The async store's replays and the async projection runner start the next read before they
decode or apply what they hold, so that the database works meanwhile. Async only (the sync
twins read in turn). No I/O of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["read_ahead"]

T = TypeVar("T")


def read_ahead(read: Awaitable[T]) -> asyncio.Future[T]:
    """Start ``read`` now and return it, to await when its result is wanted; a reader that
    stops first leaves it unread, and its failure is then not reported as unhandled."""
    task = asyncio.ensure_future(read)
    task.add_done_callback(_take_outcome)
    return task


def _take_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
