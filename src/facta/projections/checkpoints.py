# WARNING: generated from src/facta/projections/checkpoints_async.py by tools/gen_sync.py; do not edit.
"""Where a projection keeps its place (the sync twin of this module is generated from it).

One object per running projection holds its lock (one runner per projection at a time), the
transaction its read model commits in, its checkpoint row and its dead letters. Each backend
implements it in its own module; :func:`open_checkpoints` picks the one for a store.
"""

from __future__ import annotations

import abc
import threading
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from facta.events import Checkpoint, RecordedEvent
from facta.projections.status import DeadLetter, ProjectionStatus
from facta.store import EventStore

__all__ = ["Checkpoints", "open_checkpoints", "statuses"]


class Checkpoints(abc.ABC):
    """One projection's checkpoint, lock, transactions and dead letters in a store's database.

    ``transactional`` is False where the read model cannot commit with the checkpoint (the
    memory store): a failed batch then keeps the effects of the events before the failure.
    """

    transactional: ClassVar[bool] = True

    def __init__(self, store: EventStore, name: str) -> None:
        self.store, self.name = store, name

    @classmethod
    @abc.abstractmethod
    def statuses(cls, store: EventStore) -> list[ProjectionStatus]:
        """Every projection with a checkpoint in ``store``, by name."""

    @abc.abstractmethod
    def open(self, wait: bool, poll_interval: float) -> None:
        """Take the projection's lock (waiting for it, or raising ``ProjectionLocked``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the lock and the connection; safe to call twice."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction on the read model's database, yielding the connection handlers get."""

    @abc.abstractmethod
    def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        """Record that a runner is at work (``state``, the type names it reads); its checkpoint."""

    @abc.abstractmethod
    def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        """Move the checkpoint from ``before`` to ``after`` in the open transaction."""

    @abc.abstractmethod
    def reset(self, connection: Any) -> None:
        """Move the checkpoint back to the start of the log, in the open transaction."""

    @abc.abstractmethod
    def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        """Store a failed event in the dead letters, in the open transaction."""

    @abc.abstractmethod
    def dead_letters(self) -> list[DeadLetter]:
        """The events this projection parked, in log order."""

    @abc.abstractmethod
    def finish(self, state: str, error: str | None = None) -> None:
        """Record how the runner ended (stopped, or failed and why)."""

    @abc.abstractmethod
    def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        """How many events of these types the log holds after ``after``."""

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        """Return when new events may have arrived, ``stopping`` is set, or after ``seconds``."""
        stopping.wait(seconds)


def open_checkpoints(store: EventStore, name: str) -> Checkpoints:
    """The checkpoints of projection ``name`` in ``store``'s database (not yet opened)."""
    return _class_for(store)(store, name)


def statuses(store: EventStore) -> list[ProjectionStatus]:
    """Every projection that has a checkpoint in the store, by name."""
    return _class_for(store).statuses(store)


def _class_for(store: EventStore) -> type[Checkpoints]:
    from facta.backends.memory import MemoryEventStore
    from facta.backends.sqlite import SQLiteEventStore

    if isinstance(store, MemoryEventStore):
        from facta.projections.memory import MemoryCheckpoints

        return MemoryCheckpoints
    if isinstance(store, SQLiteEventStore):
        from facta.projections.sqlite import SQLiteCheckpoints

        return SQLiteCheckpoints
    from facta.backends.postgres import PostgresEventStore

    if isinstance(store, PostgresEventStore):
        from facta.projections.postgres import PostgresCheckpoints

        return PostgresCheckpoints
    raise TypeError(f"projections do not support {type(store).__qualname__} stores")
