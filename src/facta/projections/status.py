"""What ``facta projections`` shows about each projection: pure values, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from facta.events import Checkpoint

__all__ = [
    "FAILED",
    "REBUILDING",
    "RUNNING",
    "STOPPED",
    "DeadLetter",
    "Progress",
    "ProjectionStatus",
    "shown_state",
]

# Called after each committed batch with (events applied so far, events there were to apply).
Progress = Callable[[int, int], object]

RUNNING = "running"
REBUILDING = "rebuilding"
STOPPED = "stopped"
FAILED = "failed"


class ProjectionStatus(NamedTuple):
    """One projection: where it is, how many of its events it is behind, and its state."""

    name: str
    checkpoint: Checkpoint
    lag: int
    state: str
    error: str | None = None


class DeadLetter(NamedTuple):
    """An event a projection parked (``on_error=OnError.DEAD_LETTER``) instead of stopping."""

    stream_id: str
    version: int
    position: int
    transaction_id: int
    event_id: uuid.UUID
    type: str
    error: str
    failed_at: datetime


def shown_state(stored: str, held: bool) -> str:
    """The state to show: a runner that died (no one holds the lock) shows as stopped."""
    if stored == FAILED:
        return FAILED
    if held:
        return stored if stored == REBUILDING else RUNNING
    return STOPPED
