"""The named rows a recorder (a backend) reads and writes: pure values, no I/O.

A recorder hands these to the event store, which decodes them; third-party backends build
them from their own storage. The replay path alone uses a plain tuple (:data:`ReplayRow`),
since a load decodes tens of thousands of them and a tuple costs nothing to make.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from facta.events import Checkpoint
from facta.slices import SliceRange

__all__ = [
    "FAILED",
    "REBUILDING",
    "RUNNING",
    "STOPPED",
    "DeadLetter",
    "EventPlace",
    "HeldMessage",
    "HeldRange",
    "InboxStream",
    "Progress",
    "ProjectionStatus",
    "RangeStatus",
    "ReplayRow",
    "SlicedStatus",
    "StoredEvent",
    "StreamInfo",
    "StreamVersion",
    "check_name",
    "shown_state",
]


class StoredEvent(NamedTuple):
    """One event as stored: its place in its stream and in the global log, and its bytes.

    ``transaction_id`` is 0 where the global order is the order of positions (every backend
    whose writers commit one at a time); ``encoding`` names the codec stages applied to
    ``data`` and ``metadata`` (see :class:`facta.codec.Codec`).
    """

    stream_id: str
    version: int
    position: int
    transaction_id: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    encoding: int
    data: bytes
    metadata: bytes
    recorded_at: datetime

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint just after this event in the global log."""
        return Checkpoint(self.transaction_id, self.position)


# What a replay reads of a stored event: (version, type, schema_version, encoding, data).
ReplayRow = tuple[int, str, int, int, bytes]


class EventPlace(NamedTuple):
    """Where a stored event is: its stream, its version there and its global position."""

    stream_id: str
    version: int
    position: int


class StreamVersion(NamedTuple):
    """A stream and its current version (the number of events in it)."""

    stream_id: str
    version: int


class StreamInfo(NamedTuple):
    """What a store records of a stream beside its events (see :mod:`facta.lifecycle`).

    ``version`` is the stream's version (at its deletion, for a deleted one);
    ``aggregate_type`` the type of the repository that created it (None: plain appends);
    ``deleted_at`` is set while it is deleted, ``hard_deleted`` when its events are gone;
    ``first_version`` is 1, or the first version a truncation kept; ``max_age`` (seconds) and
    ``max_count`` are its retention (None: keep everything), applied by ``store.prune()``.
    """

    stream_id: str
    version: int
    aggregate_type: str | None = None
    deleted_at: datetime | None = None
    hard_deleted: bool = False
    first_version: int = 1
    max_age: float | None = None
    max_count: int | None = None


# -- projections ----------------------------------------------------------------------------

# Called after each committed batch with (events applied so far, events there were to apply).
Progress = Callable[[int, int], object]

RUNNING = "running"
REBUILDING = "rebuilding"
STOPPED = "stopped"
FAILED = "failed"


class ProjectionStatus(NamedTuple):
    """One projection: where it is, how many of its events it is behind, its state, and how
    many events it parked (``OnError.DEAD_LETTER``)."""

    name: str
    checkpoint: Checkpoint
    lag: int
    state: str
    error: str | None = None
    dead_letters: int = 0


class HeldRange(NamedTuple):
    """A slice range a worker holds: its fencing token (as the worker took it) and checkpoint."""

    range: SliceRange
    token: int
    checkpoint: Checkpoint


class RangeStatus(NamedTuple):
    """One slice range of a sliced projection: who holds it, its fencing token, until when,
    its checkpoint and how many of its events it is behind."""

    first: int
    last: int
    owner: str | None
    token: int
    expires_at: datetime
    checkpoint: Checkpoint
    lag: int


class SlicedStatus(NamedTuple):
    """A sliced projection: its state, its live workers and each of its ranges."""

    name: str
    state: str
    error: str | None
    workers: list[str]
    ranges: list[RangeStatus]
    dead_letters: int = 0

    @property
    def lag(self) -> int:
        """Events behind, over all ranges."""
        return sum(r.lag for r in self.ranges)


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


# -- inboxes ---------------------------------------------------------------------------------


class InboxStream(NamedTuple):
    """How far an inbox got in one stream of another store: the version it applied last, and
    that event's id (a message at this version with another id is a conflict); and the
    position (in the sending store's log) of the last lifecycle marker it applied there (0:
    none): a message of the stream from before it is a repeat (see :mod:`facta.lifecycle`)."""

    stream_id: str
    version: int
    event_id: uuid.UUID
    marker: int = 0


class HeldMessage(NamedTuple):
    """A message an inbox keeps instead of applying it now, as it was received.

    ``error`` is None for a parked message (it waits for its stream's earlier versions), and
    says why otherwise (a dead letter: a failing handler, unreadable headers, a conflict).
    ``stream_id``, ``version`` and ``event_id`` are None when the headers do not tell them.
    """

    stream_id: str | None
    version: int | None
    event_id: str | None
    subject: str
    headers: dict[str, str]
    data: bytes
    error: str | None
    held_at: datetime


def shown_state(stored: str, held: bool) -> str:
    """The state to show: a runner that died (no one holds the lock) shows as stopped."""
    if stored == FAILED:
        return FAILED
    if held:
        return stored if stored == REBUILDING else RUNNING
    return STOPPED


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def check_name(name: object) -> str:
    """A projection's (or durable subscription's) name: its checkpoint's key, stable and short."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"a projection's (or durable subscription's) name must be 1-100 letters, digits, "
            f"'_', '.' or '-', got {name!r}; set `name = 'balances'` on the projection class"
        )
    return name
