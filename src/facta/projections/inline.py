"""Inline projections: updated inside the transaction of every append, so never behind.

A store's recorder calls its :class:`InlineProjections` (its ``on_append`` hook) with the
events it just wrote, before it commits; a handler that raises makes the append fail and
nothing is written. Inline projections see the appends made while they are registered: to
fill one from the existing log, rebuild it (with a runner) before the writers start.

The hook runs where the append's transaction runs. Where that is synchronous code (a lock in
memory, SQLite's worker thread: ``recorder.sync_transactions``) inline projections are sync
:class:`Projection` s, even on an async store; elsewhere (async PostgreSQL) they are
:class:`AsyncProjection` s. The memory store cannot take back what handlers did before one of
them failed: they must be idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from facta.context import caused_by
from facta.events import RecordedEvent
from facta.projections.errors import ProjectionError
from facta.projections.handlers import check_name, resolve
from facta.projections.projection import Projection
from facta.projections.projection_async import AsyncProjection
from facta.projections.write import writes_of
from facta.records import StoredEvent
from facta.store import EventStore
from facta.store_async import AsyncEventStore

__all__ = ["InlineProjections", "add_inline", "add_inline_async"]

_Entry = tuple[str, dict[type, Callable[..., Any]], frozenset[str]]


class InlineProjections:
    """What a store's append transaction calls with the events it just wrote."""

    def __init__(self, decode: Callable[[StoredEvent], RecordedEvent]) -> None:
        self._decode = decode
        self._entries: list[_Entry] = []

    def add(
        self, name: str, handlers: dict[type, Callable[..., Any]], types: tuple[str, ...]
    ) -> None:
        if any(entry[0] == name for entry in self._entries):
            raise ValueError(f"an inline projection named {name!r} is already registered")
        self._entries.append((name, handlers, frozenset(types)))

    def _calls(
        self, stored: Sequence[StoredEvent]
    ) -> list[tuple[str, Callable[..., Any], RecordedEvent]]:
        decoded: dict[int, RecordedEvent] = {}
        calls = []
        for name, handlers, types in self._entries:
            for index, row in enumerate(stored):
                if row.type not in types:
                    continue
                event = decoded.get(index)
                if event is None:
                    event = decoded[index] = self._decode(row)
                handler = handlers.get(type(event.data))
                if handler is not None:
                    calls.append((name, handler, event))
        return calls

    def call(self, connection: Any, events: Sequence[StoredEvent]) -> None:
        """Run the sync handlers; ``ProjectionError`` (the append then fails) if one raises."""
        for name, handler, event in self._calls(events):
            try:
                with caused_by(event):
                    for write in writes_of(handler(event, connection)):  # at once: no batch
                        connection.execute(write.sql, write.params)
            except Exception as e:
                raise ProjectionError(name, event, e, inline=True) from e

    async def call_async(self, connection: Any, events: Sequence[StoredEvent]) -> None:
        """Run the async handlers; ``ProjectionError`` (the append then fails) if one raises."""
        for name, handler, event in self._calls(events):
            try:
                with caused_by(event):
                    for write in writes_of(await handler(event, connection)):
                        await connection.execute(write.sql, write.params)
            except Exception as e:
                raise ProjectionError(name, event, e, inline=True) from e


def add_inline(store: EventStore, projection: Projection[Any]) -> None:
    """Update ``projection`` in the transaction of every later append to ``store``.

    Runs the projection's ``setup`` hook first, in the store's database (on PostgreSQL with
    ``search_path`` set to the store's schema, as handlers have it).
    """
    entry = _entry(store, projection, Projection)
    with store.recorder.transaction() as connection:
        projection.setup(connection)
    _hook(store).add(*entry)


async def add_inline_async(
    store: AsyncEventStore, projection: AsyncProjection[Any] | Projection[Any]
) -> None:
    """Update ``projection`` in the transaction of every later append to ``store``.

    Runs the projection's ``setup`` hook first, in the store's database. Where the store's
    append transaction is synchronous code (memory, SQLite) ``projection`` is a sync
    :class:`Projection`; on PostgreSQL it is an :class:`AsyncProjection`.
    """
    sync = store.recorder.sync_transactions
    entry = _entry(store, projection, Projection if sync else AsyncProjection)
    async with store.recorder.transaction() as connection:
        if isinstance(projection, Projection):
            projection.setup(connection)
        else:
            await projection.setup(connection)
    _hook(store).add(*entry)


def _entry(
    store: AsyncEventStore | EventStore,
    projection: AsyncProjection[Any] | Projection[Any],
    kind: type,
) -> tuple[str, dict[type, Callable[..., Any]], tuple[str, ...]]:
    if not isinstance(projection, kind):
        raise TypeError(
            f"inline projections on a {store.recorder.location} store are {kind.__name__} "
            f"subclasses (their handlers run inside its append transaction); "
            f"{type(projection).__qualname__} is not"
        )
    name = check_name(getattr(projection, "name", None))
    handlers, types = resolve(projection, projection.handler_names, store.codec)
    return name, handlers, types


def _hook(store: AsyncEventStore | EventStore) -> InlineProjections:
    hook = store.recorder.on_append
    if not isinstance(hook, InlineProjections):
        hook = store.recorder.on_append = InlineProjections(store.decode)
    return hook
