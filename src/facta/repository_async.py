"""Repositories load aggregates by replaying their streams and save their pending events.

``AsyncRepository`` is the source; ``Repository`` is generated from it.
"""

from __future__ import annotations

import asyncio  # sync: import time
import random
from collections.abc import Callable
from typing import Generic, TypeVar

from facta.aggregate import Aggregate
from facta.appending import AppendResult
from facta.errors import AggregateNotFound, ConcurrencyError, RetriesExhausted
from facta.events import Metadata, NewEvent
from facta.store_async import AsyncEventStore

__all__ = ["AsyncRepository"]

A = TypeVar("A", bound=Aggregate)


class AsyncRepository(Generic[A]):
    """Loads and saves aggregates of one type in one store."""

    def __init__(self, store: AsyncEventStore, aggregate_type: type[A]) -> None:
        self.store = store
        self.aggregate_type = aggregate_type

    async def load(self, aggregate_id: str, *, version: int | None = None) -> A:
        """The aggregate as of its latest version (or ``version``), replayed from its stream.

        Raises ``AggregateNotFound`` when the stream holds no events.
        """
        aggregate = self.aggregate_type(aggregate_id)
        apply = aggregate.apply
        last = 0
        async for event in self.store.read_stream(aggregate_id, 1, version):
            apply(event.data)
            last = event.version
        if last == 0:
            raise AggregateNotFound(self.aggregate_type.type_name, aggregate_id)
        aggregate.version = last
        return aggregate

    async def save(self, aggregate: A, *, metadata: Metadata | None = None) -> AppendResult | None:
        """Append the aggregate's pending events, expecting the version it was loaded at.

        Raises ``ConcurrencyError`` (and keeps the pending events) if another writer got
        there first. Returns None when there was nothing to save.
        """
        pending = aggregate.pending_events
        if not pending:
            return None
        events = pending if metadata is None else [NewEvent(e, metadata=metadata) for e in pending]
        result = await self.store.append(aggregate.id, events, aggregate.version)
        aggregate.mark_saved(result.version)
        return result

    async def update(
        self,
        aggregate_id: str,
        command: Callable[[A], object],
        *,
        attempts: int = 5,
        create: bool = False,
        metadata: Metadata | None = None,
    ) -> A:
        """Load, run ``command`` on the aggregate, save; on a conflict, do it all again.

        ``command`` must decide from the aggregate's state alone (it is re-run on fresh state).
        ``create`` runs it on a new aggregate when the stream does not exist yet. After
        ``attempts`` conflicts in a row, raises ``RetriesExhausted``.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        last_conflict = None
        for attempt in range(attempts):
            try:
                aggregate = await self.load(aggregate_id)
            except AggregateNotFound:
                if not create:
                    raise
                aggregate = self.aggregate_type(aggregate_id)
            command(aggregate)
            try:
                await self.save(aggregate, metadata=metadata)
                return aggregate
            except ConcurrencyError as conflict:
                last_conflict = conflict
                if attempt + 1 < attempts:  # back off a little, with jitter, before retrying
                    await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        assert last_conflict is not None
        raise RetriesExhausted(aggregate_id, attempts, last_conflict)
