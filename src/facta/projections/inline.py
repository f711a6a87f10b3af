"""Inline projections: updated inside the transaction of every append, so never behind.

A store calls its :class:`InlineProjections` with the rows it just wrote, before it commits;
a handler that raises makes the append fail and nothing is written. Inline projections see
the appends made while they are registered: to fill one from the existing log, rebuild it
(with a runner) before the writers start.

The hook runs where the append's transaction runs: synchronous code on SQLite (in a worker
thread for the async store) and under the memory store's lock, so there inline projections
are sync :class:`Projection` s; on PostgreSQL they are of the store's flavour. The memory
store cannot take back what handlers did before one of them failed: they must be idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facta.events import RecordedEvent
from facta.projections.errors import ProjectionError
from facta.projections.handlers import check_name, resolve
from facta.projections.projection import Projection
from facta.projections.projection_async import AsyncProjection
from facta.store import EventStore
from facta.store_async import AsyncEventStore, Row

__all__ = ["InlineProjections", "add_inline", "add_inline_async"]

_Entry = tuple[str, dict[type, Callable[..., Any]], frozenset[str]]


class InlineProjections:
    """What a store's append transaction calls with the rows it just wrote."""

    def __init__(self, record: Callable[[Row], RecordedEvent], prelude: Any = None) -> None:
        self._record = record
        self._prelude = prelude  # a statement to run before the handlers (PostgreSQL's schema)
        self._entries: list[_Entry] = []

    def add(
        self, name: str, handlers: dict[type, Callable[..., Any]], types: tuple[str, ...]
    ) -> None:
        if any(entry[0] == name for entry in self._entries):
            raise ValueError(f"an inline projection named {name!r} is already registered")
        self._entries.append((name, handlers, frozenset(types)))

    def _calls(self, rows: list[Row]) -> list[tuple[str, Callable[..., Any], RecordedEvent]]:
        decoded: dict[int, RecordedEvent] = {}
        calls = []
        for name, handlers, types in self._entries:
            for index, row in enumerate(rows):
                if row[5] not in types:
                    continue
                event = decoded.get(index)
                if event is None:
                    event = decoded[index] = self._record(row)
                handler = handlers.get(type(event.data))
                if handler is not None:
                    calls.append((name, handler, event))
        return calls

    def call(self, connection: Any, rows: list[Row]) -> None:
        """Run the sync handlers; ``ProjectionError`` (the append then fails) if one raises."""
        calls = self._calls(rows)
        if calls and self._prelude is not None:
            connection.execute(self._prelude)
        for name, handler, event in calls:
            try:
                handler(event, connection)
            except Exception as e:
                raise ProjectionError(name, event, e, inline=True) from e

    async def call_async(self, connection: Any, rows: list[Row]) -> None:
        """Run the async handlers; ``ProjectionError`` (the append then fails) if one raises."""
        calls = self._calls(rows)
        if calls and self._prelude is not None:
            await connection.execute(self._prelude)
        for name, handler, event in calls:
            try:
                await handler(event, connection)
            except Exception as e:
                raise ProjectionError(name, event, e, inline=True) from e


def add_inline(store: EventStore, projection: Projection[Any]) -> None:
    """Update ``projection`` in the transaction of every later append to ``store``.

    Runs the projection's ``setup`` hook first, in the store's database (on PostgreSQL with
    ``search_path`` set to the store's schema, as handlers have it).
    """
    from facta.backends.memory import MemoryEventStore
    from facta.backends.sqlite import SQLiteEventStore

    entry = _entry(store, projection, Projection)
    assert isinstance(projection, Projection)
    if isinstance(store, MemoryEventStore):
        projection.setup(None)
    elif isinstance(store, SQLiteEventStore):
        store.run_in_transaction(projection.setup)
    else:
        from facta.backends.postgres import PostgresEventStore

        if not isinstance(store, PostgresEventStore):
            raise TypeError(f"inline projections do not support {type(store).__qualname__} stores")
        with store.connection() as connection, connection.transaction():
            connection.execute(_schema(store.schema))
            projection.setup(connection)
    _hook(store).add(*entry)


async def add_inline_async(
    store: AsyncEventStore, projection: AsyncProjection[Any] | Projection[Any]
) -> None:
    """Update ``projection`` in the transaction of every later append to ``store``.

    Runs the projection's ``setup`` hook first, in the store's database. On the memory and
    SQLite stores ``projection`` is a sync :class:`Projection`: their append transaction is
    synchronous code. On PostgreSQL it is an :class:`AsyncProjection`.
    """
    from facta.backends.memory_async import AsyncMemoryEventStore
    from facta.backends.sqlite_async import AsyncSQLiteEventStore

    if isinstance(store, AsyncMemoryEventStore | AsyncSQLiteEventStore):
        entry = _entry(store, projection, Projection)
        assert isinstance(projection, Projection)
        if isinstance(store, AsyncMemoryEventStore):
            projection.setup(None)
        else:
            await store.run_in_transaction(projection.setup)
    else:
        from facta.backends.postgres_async import AsyncPostgresEventStore

        if not isinstance(store, AsyncPostgresEventStore):
            raise TypeError(f"inline projections do not support {type(store).__qualname__} stores")
        entry = _entry(store, projection, AsyncProjection)
        assert isinstance(projection, AsyncProjection)
        async with store.connection() as connection, connection.transaction():
            await connection.execute(_schema(store.schema))
            await projection.setup(connection)
    _hook(store).add(*entry)


def _entry(
    store: AsyncEventStore | EventStore,
    projection: AsyncProjection[Any] | Projection[Any],
    kind: type,
) -> tuple[str, dict[type, Callable[..., Any]], tuple[str, ...]]:
    if not isinstance(projection, kind):
        raise TypeError(
            f"inline projections on a {type(store).__qualname__} are {kind.__name__} subclasses "
            f"(their handlers run inside its append transaction); "
            f"{type(projection).__qualname__} is not"
        )
    name = check_name(getattr(projection, "name", None))
    handlers, types = resolve(projection, projection.handler_names, store.codec)
    return name, handlers, types


def _hook(store: AsyncEventStore | EventStore) -> InlineProjections:
    if store._inline is None:
        schema = getattr(store, "schema", None)  # PostgreSQL: read models beside the events
        store._inline = InlineProjections(
            store._record, None if schema is None else _schema(schema)
        )
    return store._inline


def _schema(schema: str) -> Any:
    """``SET LOCAL search_path`` to a PostgreSQL store's schema, as runners have it."""
    from psycopg import sql

    return sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema))
