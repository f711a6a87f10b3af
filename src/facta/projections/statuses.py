# WARNING: generated from src/facta/projections/statuses_async.py by tools/gen_sync.py; do not edit.
"""Every projection of a store, as ``facta projections`` lists them (sync twin generated)."""

from __future__ import annotations

from facta.records import ProjectionStatus
from facta.store import EventStore

__all__ = ["statuses"]


def statuses(store: EventStore) -> list[ProjectionStatus]:
    """Every projection that has a checkpoint in the store, by name: place, lag and state."""
    return store.recorder.projection_statuses()
