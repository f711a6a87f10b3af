"""Run callables at the same time: as threads for the sync suite, as tasks for the async one.

The contract calls ``run_concurrently_async``; its generated sync twin calls
``run_concurrently`` (the generator drops the ``_async`` suffix).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["run_concurrently", "run_concurrently_async"]

T = TypeVar("T")

# How long a thread waits for the others to be ready before the run is called off.
_START_TIMEOUT = 30.0


def run_concurrently(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Call each function in its own thread, all released at once; their results, in order.

    If a call raises, its exception is raised here once every thread has finished.
    """
    start = threading.Barrier(len(calls), timeout=_START_TIMEOUT)

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result() for future in futures]


async def run_concurrently_async(
    calls: Sequence[Callable[[], Coroutine[Any, Any, T]]],
) -> list[T]:
    """Run each coroutine function as a task; their results, in order.

    If one fails, the others are cancelled and the failure is raised (in an ExceptionGroup).
    """
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(call()) for call in calls]
    return [task.result() for task in tasks]
