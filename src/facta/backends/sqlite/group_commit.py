"""Group commit: the appends that queue for the store's connection are committed together.

With ``synchronous=FULL`` a commit waits for the disk (a sync of the WAL file), which costs
more than an append's statements. While one append holds the connection, the appends of
other threads (or, in the async store, of other tasks) queue here; the next of them to get
the connection writes every queued append in one transaction, each under a savepoint of its
own, and commits them with one sync. An append that fails there is taken back to its
savepoint and left to its caller, who then writes it alone, in a transaction of its own, and
meets its error as if there had been no group. So each caller still gets its own result or
error, and returns only once its events are committed; nobody's append fails because of
another's.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence

from facta.appending import AppendResult, PreparedAppend

__all__ = ["AppendQueue", "Queued"]


class Queued:
    """An append waiting in the queue, and what became of it."""

    __slots__ = ("appends", "context", "results", "taken")

    def __init__(self, appends: Sequence[PreparedAppend]) -> None:
        self.appends = appends
        # The caller's context variables: its inline projections run in them (personal
        # data keys, causation), whoever writes the group.
        self.context = contextvars.copy_context()
        # Set when a group with it in committed; None means its caller writes it alone.
        self.results: list[AppendResult] | None = None
        self.taken = False  # out of the queue: in a group, or left to its caller


class AppendQueue:
    """The appends waiting for the store's connection, in the order they came."""

    def __init__(self) -> None:
        self._queued: list[Queued] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, appends: Sequence[PreparedAppend]) -> Queued:
        queued = Queued(appends)
        with self._lock:
            self._queued.append(queued)
        return queued

    def take(self, mine: Queued, everyone: bool) -> list[Queued]:
        """Every queued append (``everyone``), or only ``mine``; out of the queue."""
        with self._lock:  # withdraw() must see them taken as soon as they are out
            if everyone:
                taken, self._queued = self._queued, []
            else:
                self._queued.remove(mine)
                taken = [mine]
            for queued in taken:
                queued.taken = True
        return taken

    def withdraw(self, queued: Queued) -> None:
        """Take ``queued`` out unless it is out already: its call ended before its turn (a
        thread that could not start, an interrupt, a cancelled task). A call that still
        runs then writes it alone; otherwise nobody writes it."""
        if not queued.taken:
            with self._lock:
                if not queued.taken:
                    self._queued.remove(queued)
                    queued.taken = True
