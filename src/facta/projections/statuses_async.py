"""Every projection of a store, as ``facta projections`` lists them (sync twin generated)."""

from __future__ import annotations

from facta.records import ProjectionStatus
from facta.store_async import AsyncEventStore

__all__ = ["statuses_async"]


async def statuses_async(store: AsyncEventStore) -> list[ProjectionStatus]:
    """Every projection that has a checkpoint in the store, by name: place, lag and state."""
    return await store.recorder.projection_statuses()
