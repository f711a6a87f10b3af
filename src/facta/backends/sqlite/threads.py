"""Where the async recorder runs its calls: reads on the event loop's thread, writes in one
worker thread of its own, and transaction steps run to their end whatever cancels the caller.

sqlite3 blocks. A read of a WAL file never waits for a writer and takes microseconds to a few
milliseconds, about what decoding its rows costs on the loop anyway, so it runs right there
when the store's connection is free (no thread hop: a hop costs more than a small read). A
write may wait for another connection's write lock (up to the store's ``timeout``) and for the
disk at commit, so it goes to the recorder's worker thread: one thread fed by a queue, cheaper
than a thread pool's hop per call, and writes keep their order (save that appends queued
behind one another are committed together: :mod:`facta.backends.sqlite.group_commit`). Only
the async recorder uses this module (the sync one runs everything inline).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["WorkerThread", "read_here", "run_to_the_end"]

T = TypeVar("T")

# A call for the worker thread: the caller's loop and future, context, function and arguments.
_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
]


class WorkerThread:
    """One daemon thread that runs calls in turn and resolves their futures on their loops.

    Started by the first call, stopped by :meth:`stop`. A caller cancelled while its call is
    queued or running does not stop the call (as with ``asyncio.to_thread``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``function(*args)`` in the worker thread, with the caller's context variables."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._start()
        self._jobs.put((loop, future, contextvars.copy_context(), function, args))
        return future

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._main, name=self.name, daemon=True)
                thread.start()
                self._thread = thread

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            _do(job)
            job = None  # hold nothing of a finished call while waiting for the next

    def stop(self) -> None:
        """Let the queued calls finish, then end the thread (a no-op if it never started)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            if thread is not threading.current_thread():
                thread.join()


def _do(job: _Job) -> None:
    loop, future, context, function, args = job
    result, error = None, None
    try:
        result = context.run(function, *args)
    except BaseException as e:  # handed to the caller, as to_thread does
        error = e
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for the call
        loop.call_soon_threadsafe(_set, future, result, error)


def _set(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


async def read_here(
    lock: threading.Lock,
    call: Callable[..., T],
    elsewhere: Callable[..., Awaitable[T]],
    function: Callable[..., T],
    *args: Any,
) -> T:
    """``call(function, *args)`` on the loop's thread if ``lock`` is free right now (taken
    and released around it); else ``elsewhere(function, *args)``, which waits for the lock
    off the loop (a transaction or a write holds it)."""
    if lock.acquire(blocking=False):
        try:
            return call(function, *args)
        finally:
            lock.release()
    return await elsewhere(function, *args)


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
