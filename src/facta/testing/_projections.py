# WARNING: generated from src/facta/testing/_projections_async.py by tools/gen_sync.py; do not edit.
"""The contract's projection: applies its streams' events to a ReadModel (sync twin generated)."""

from __future__ import annotations

from typing import Any

from facta.events import RecordedEvent
from facta.projections import Projection, handles
from facta.store import EventStore
from facta.testing._read_model import ReadModel
from facta.testing.events import Projected

__all__ = ["Tally", "inline_tally"]


class Tally(Projection[Any]):
    """Applies the ``Projected`` events of its model's streams; leaves the connection alone."""

    def __init__(self, name: str, model: ReadModel) -> None:
        self.name, self.model = name, model

    def reset(self, connection: Any) -> None:
        self.model.reset()

    @handles(Projected)
    def projected(self, event: RecordedEvent, connection: Any) -> None:
        gate = self.model.gate
        if gate is not None and gate.holds(event):
            gate.hold()
        self.model.apply(event)


def inline_tally(store: EventStore, name: str, model: ReadModel) -> Projection[Any]:
    """The projection the store's append transaction can call: a sync one where that
    transaction runs sync code (``recorder.sync_transactions``: memory, SQLite)."""
    return Tally(name, model)
