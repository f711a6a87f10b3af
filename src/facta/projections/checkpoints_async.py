"""Where a projection keeps its place (the sync twin of this module is generated from it).

One object per running projection holds its lock (one runner per projection at a time), the
transaction its read model commits in, its checkpoint row and its dead letters. Each backend
implements it in its own module; :func:`open_checkpoints` picks the one for a store.
"""

from __future__ import annotations

import abc
import asyncio  # sync: import threading
import contextlib  # sync: drop
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

from facta.events import Checkpoint, RecordedEvent
from facta.projections.status import DeadLetter, ProjectionStatus
from facta.store_async import AsyncEventStore

__all__ = ["AsyncCheckpoints", "open_checkpoints", "statuses_async"]


class AsyncCheckpoints(abc.ABC):
    """One projection's checkpoint, lock, transactions and dead letters in a store's database.

    ``transactional`` is False where the read model cannot commit with the checkpoint (the
    memory store): a failed batch then keeps the effects of the events before the failure.
    """

    transactional: ClassVar[bool] = True

    def __init__(self, store: AsyncEventStore, name: str) -> None:
        self.store, self.name = store, name

    @classmethod
    @abc.abstractmethod
    async def statuses(cls, store: AsyncEventStore) -> list[ProjectionStatus]:
        """Every projection with a checkpoint in ``store``, by name."""

    @abc.abstractmethod
    async def open(self, wait: bool, poll_interval: float) -> None:
        """Take the projection's lock (waiting for it, or raising ``ProjectionLocked``)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the lock and the connection; safe to call twice."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction on the read model's database, yielding the connection handlers get."""

    @abc.abstractmethod
    async def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        """Record that a runner is at work (``state``, the type names it reads); its checkpoint."""

    @abc.abstractmethod
    async def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        """Move the checkpoint from ``before`` to ``after`` in the open transaction."""

    @abc.abstractmethod
    async def reset(self, connection: Any) -> None:
        """Move the checkpoint back to the start of the log, in the open transaction."""

    @abc.abstractmethod
    async def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        """Store a failed event in the dead letters, in the open transaction."""

    @abc.abstractmethod
    async def dead_letters(self) -> list[DeadLetter]:
        """The events this projection parked, in log order."""

    @abc.abstractmethod
    async def finish(self, state: str, error: str | None = None) -> None:
        """Record how the runner ended (stopped, or failed and why)."""

    @abc.abstractmethod
    async def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        """How many events of these types the log holds after ``after``."""

    async def wait(self, seconds: float, stopping: asyncio.Event) -> None:
        """Return when new events may have arrived, ``stopping`` is set, or after ``seconds``."""
        with contextlib.suppress(TimeoutError):  # sync: stopping.wait(seconds)
            await asyncio.wait_for(stopping.wait(), seconds)  # sync: drop


def open_checkpoints(store: AsyncEventStore, name: str) -> AsyncCheckpoints:
    """The checkpoints of projection ``name`` in ``store``'s database (not yet opened)."""
    return _class_for(store)(store, name)


async def statuses_async(store: AsyncEventStore) -> list[ProjectionStatus]:
    """Every projection that has a checkpoint in the store, by name."""
    return await _class_for(store).statuses(store)


def _class_for(store: AsyncEventStore) -> type[AsyncCheckpoints]:
    from facta.backends.memory_async import AsyncMemoryEventStore
    from facta.backends.sqlite_async import AsyncSQLiteEventStore

    if isinstance(store, AsyncMemoryEventStore):
        from facta.projections.memory_async import AsyncMemoryCheckpoints

        return AsyncMemoryCheckpoints
    if isinstance(store, AsyncSQLiteEventStore):
        from facta.projections.sqlite_async import AsyncSQLiteCheckpoints

        return AsyncSQLiteCheckpoints
    from facta.backends.postgres_async import AsyncPostgresEventStore

    if isinstance(store, AsyncPostgresEventStore):
        from facta.projections.postgres_async import AsyncPostgresCheckpoints

        return AsyncPostgresCheckpoints
    raise TypeError(f"projections do not support {type(store).__qualname__} stores")
