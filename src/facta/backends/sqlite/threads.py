"""The async recorder's transaction steps, run in a worker thread whatever cancels the caller.

``transaction()`` takes the store's lock in one step and releases it in another: a step
cancelled before it ran, or one that ran while its caller was cancelled, would leave the lock
held and the store stuck. Only the async recorder uses this (the sync one runs them inline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["run_to_the_end"]

T = TypeVar("T")


async def run_to_the_end(
    function: Callable[..., T], *args: Any, undo: Callable[[], object] | None = None
) -> T:
    """``function(*args)`` in a worker thread, run to its end even if the caller is cancelled.

    If the caller is cancelled and ``function`` then succeeds, ``undo()`` is called (on the
    event loop's thread) to take back what it did.
    """
    step = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        if undo is not None:
            step.add_done_callback(lambda done: _undo_if_done(done, undo))
        raise


def _undo_if_done(done: asyncio.Future[Any], undo: Callable[[], object]) -> None:
    if not done.cancelled() and done.exception() is None:
        undo()
