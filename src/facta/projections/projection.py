# WARNING: generated from src/facta/projections/projection_async.py by tools/gen_sync.py; do not edit.
"""The projection base class (the sync twin of this module is generated from it).

>>> import sqlite3
>>> from dataclasses import dataclass
>>> from facta.events import RecordedEvent, event
>>> @event("doc.Deposited")
... @dataclass(frozen=True)
... class Deposited:
...     amount: int
>>> class Balances(Projection[sqlite3.Connection]):
...     name = "doc-balances"
...     async def setup(self, db: sqlite3.Connection) -> None:
...         db.execute("CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY, amount INT)")
...     async def reset(self, db: sqlite3.Connection) -> None:
...         db.execute("DELETE FROM balances")
...     @handles(Deposited)
...     async def deposited(self, event: RecordedEvent, db: sqlite3.Connection) -> None:
...         db.execute(
...             "INSERT INTO balances VALUES (?, ?) ON CONFLICT (id)"
...             " DO UPDATE SET amount = amount + excluded.amount",
...             (event.stream_id, event.data.amount),
...         )
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from facta.projections.handlers import handler_table, handles

__all__ = ["Projection", "handles"]

C = TypeVar("C")


class Projection(Generic[C]):
    """A read model fed from the global log, one ``@handles(EventClass)`` method per event type.

    ``name`` (stable, short) keys the projection's checkpoint: renaming the class is harmless,
    renaming ``name`` starts the projection over. Handlers get ``(event, connection)``: the
    connection of the store's database, in the transaction that also moves the checkpoint, so
    each event's effect happens exactly once (SQLite: ``sqlite3.Connection``; PostgreSQL: the
    psycopg connection). With the memory store ``connection`` is None and delivery is
    at-least-once: handlers must then be idempotent. Events of other types are never decoded.
    """

    name: str
    handler_names: ClassVar[dict[type, str]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.handler_names = handler_table(cls)

    def setup(self, connection: C) -> None:
        """Create the read model (tables, indexes) if it is missing; runs before any event."""

    def reset(self, connection: C) -> None:
        """Empty the read model, before a rebuild replays the log into it."""
        raise NotImplementedError(
            f"projection {type(self).__qualname__} has no reset(); define one that empties its "
            "read model so that it can be rebuilt"
        )
