"""A wake-up for readers of the memory store, sync or async, sent by every append."""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["Signal"]


class Signal:
    """Wakes every thread and task waiting in :meth:`wait` / :meth:`wait_async`.

    ``notify`` may be called from any thread (the memory store's appends run in their
    callers' threads); tasks are woken on their own event loops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: set[threading.Event] = set()
        self._tasks: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        if not self._threads and not self._tasks:  # nobody waits: skip the lock (a waiter
            return  # registering meanwhile misses this notify just as it would after it)
        with self._lock:
            for event in self._threads:
                event.set()
            for loop, task_event in self._tasks:
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                    loop.call_soon_threadsafe(task_event.set)

    def wait(self, seconds: float) -> bool:
        """Block until the next ``notify`` (True) or for ``seconds`` (False)."""
        event = threading.Event()
        with self._lock:
            self._threads.add(event)
        try:
            return event.wait(seconds)
        finally:
            with self._lock:
                self._threads.discard(event)

    async def wait_async(self, seconds: float) -> bool:
        """Wait until the next ``notify`` (True) or for ``seconds`` (False)."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._tasks.add(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), seconds)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._tasks.discard(waiter)
