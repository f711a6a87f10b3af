"""The contract's projection: applies its streams' events to a ReadModel (sync twin generated)."""

from __future__ import annotations

from typing import Any

from facta.events import RecordedEvent
from facta.projections import AsyncProjection, handles
from facta.projections.projection import Projection  # sync: drop
from facta.store_async import AsyncEventStore
from facta.testing._projections import Tally  # sync: drop
from facta.testing._read_model import ReadModel
from facta.testing.events import Projected

__all__ = ["AsyncTally", "inline_tally"]


class AsyncTally(AsyncProjection[Any]):
    """Applies the ``Projected`` events of its model's streams; leaves the connection alone."""

    def __init__(self, name: str, model: ReadModel) -> None:
        self.name, self.model = name, model

    async def reset(self, connection: Any) -> None:
        self.model.reset()

    @handles(Projected)
    async def projected(self, event: RecordedEvent, connection: Any) -> None:
        gate = self.model.gate
        if gate is not None and gate.holds(event):
            await gate.hold_async()
        self.model.apply(event)


def inline_tally(
    store: AsyncEventStore, name: str, model: ReadModel
) -> AsyncProjection[Any] | Projection[Any]:  # sync: ) -> Projection[Any]:
    """The projection the store's append transaction can call: a sync one where that
    transaction runs sync code (``recorder.sync_transactions``: memory, SQLite)."""
    if store.recorder.sync_transactions:  # sync: drop
        return Tally(name, model)  # sync: drop
    return AsyncTally(name, model)
