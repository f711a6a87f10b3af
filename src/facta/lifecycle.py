"""Deleting, reopening and truncating streams: the markers they leave and the rules they keep.

Pure values and checks, no I/O: every backend applies the same rules inside its own
transaction, and the store (``delete_stream``, ``reopen_stream``, ``truncate_stream``,
``set_retention``, ``prune``) encodes the markers.

- A **soft** deletion keeps the stream's events for audit; loads raise ``StreamDeleted`` and
  appends are refused until ``reopen_stream``. A **hard** one removes its events and
  snapshots; with ``reuse=True`` the id is free again (a load then raises
  ``AggregateNotFound`` and an append starts it anew at version 1), otherwise it stays
  deleted for good.
- Each deletion, reopening and truncation writes a **marker** into the global log at its place:
  a :class:`Deleted`, :class:`Reopened` or :class:`Truncated` event (type names
  ``facta.StreamDeleted``, ``facta.StreamReopened``, ``facta.StreamTruncated``), so readers,
  projections, subscriptions and relays see it in order, never a silent hole. Markers belong
  to no version of the stream: the first one of a stream has version -1, the next -2, and
  so on; ``read_stream`` and loads never return them, ``read_all`` does.
- A **truncation** removes the events before a version. A stream created by a repository keeps
  enough for its loads: everything after its newest snapshot (a load that would need a removed
  event raises ``EventsTruncated``). **Retention** (``max_age``, ``max_count``) is stored
  with the stream and applied by ``store.prune()`` / ``facta prune URL``, never by an append.

>>> info = StreamInfo("cart-1", 5, aggregate_type="Cart")
>>> check_truncation(info, 4, newest_snapshot=3)
True
>>> check_truncation(info, 5, newest_snapshot=3)
Traceback (most recent call last):
...
facta.errors.InvalidEvent: stream 'cart-1': cannot truncate before version 5: ...
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from facta.appending import ExpectedVersion, check_aggregate_type, check_expected
from facta.errors import ConcurrencyError, EventsTruncated, InvalidEvent, StreamDeleted
from facta.events import EventRegistry, event
from facta.records import StreamInfo

__all__ = [
    "MARKER_TYPES",
    "Deleted",
    "Pruned",
    "Reopened",
    "Truncated",
    "check_before",
    "check_deletable",
    "check_load",
    "check_open",
    "check_reopenable",
    "check_truncation",
    "next_marker_version",
    "register_markers",
]


@event("facta.StreamDeleted")
class Deleted(msgspec.Struct, frozen=True):
    """The marker of a stream's deletion: ``hard`` if its events were removed, ``reuse`` if
    its id may start anew."""

    hard: bool = False
    reuse: bool = False
    reason: str | None = None


@event("facta.StreamReopened")
class Reopened(msgspec.Struct, frozen=True):
    """The marker of a soft-deleted stream opened again."""

    reason: str | None = None


@event("facta.StreamTruncated")
class Truncated(msgspec.Struct, frozen=True):
    """The marker of a truncation: the events before ``before`` are gone."""

    before: int


# The markers and their type names: a reader that wants the stream's own events skips these.
_MARKERS: dict[type, str] = {
    Deleted: "facta.StreamDeleted",
    Reopened: "facta.StreamReopened",
    Truncated: "facta.StreamTruncated",
}
MARKER_TYPES = frozenset(_MARKERS.values())


def register_markers(registry: EventRegistry) -> None:
    """Register the markers in ``registry`` (every store's codec reads them)."""
    for cls, name in _MARKERS.items():
        found = registry.get(name)
        if found is None or found[0] is not cls:
            registry.register(cls, name)


class Pruned(NamedTuple):
    """What ``store.prune()`` did to one stream: the events it removed, and how many more its
    retention asked for that loads still need (no newer snapshot yet)."""

    stream_id: str
    removed: int
    held_back: int = 0


def next_marker_version(lowest: int | None) -> int:
    """The version of a stream's next marker, given its lowest stored version (or None)."""
    return min(lowest or 0, 0) - 1


def check_open(info: StreamInfo | None) -> None:
    """Raise ``StreamDeleted`` if the stream is deleted."""
    if info is not None and info.deleted_at is not None:
        raise StreamDeleted(info.stream_id, info.deleted_at, info.hard_deleted)


def check_load(
    stream_id: str, info: StreamInfo | None, aggregate_type: str, from_version: int
) -> None:
    """Raise what refuses a load of ``stream_id`` as ``aggregate_type`` replaying from
    ``from_version``: ``StreamDeleted``, ``WrongAggregateType`` or ``EventsTruncated``."""
    if info is None:
        return
    check_open(info)
    check_aggregate_type(stream_id, info.aggregate_type, aggregate_type)
    if info.first_version > from_version:
        raise EventsTruncated(stream_id, info.first_version)


def check_deletable(stream_id: str, info: StreamInfo | None, expected: int) -> int:
    """The version of a stream that may be deleted as ``expected`` says; raise otherwise.

    A stream with no events cannot be deleted (``ConcurrencyError``, as for
    ``STREAM_EXISTS``); nor a deleted one (``StreamDeleted``).
    """
    check_open(info)
    actual = 0 if info is None else info.version
    if actual == 0:
        raise ConcurrencyError(
            stream_id, ExpectedVersion.STREAM_EXISTS if expected < 0 else expected, 0
        )
    check_expected(stream_id, expected, actual)
    return actual


def check_reopenable(stream_id: str, info: StreamInfo | None) -> StreamInfo:
    """The stream's info if it is soft-deleted; raise ``InvalidEvent`` otherwise."""
    if info is None or info.deleted_at is None:
        raise InvalidEvent(f"stream {stream_id!r} is not deleted; there is nothing to reopen")
    if info.hard_deleted:
        raise InvalidEvent(
            f"stream {stream_id!r} was hard-deleted: its events are gone and it cannot be "
            "reopened (delete with reuse=True to let the id start anew)"
        )
    return info


def check_before(before: object) -> None:
    """Raise ``InvalidEvent`` unless ``before`` is a version (an int >= 1)."""
    if not isinstance(before, int) or isinstance(before, bool) or before < 1:
        raise InvalidEvent(f"truncate before must be a version >= 1, got {before!r}")


def check_truncation(info: StreamInfo | None, before: int, newest_snapshot: int | None) -> bool:
    """Whether truncating before ``before`` removes anything; raise if it must not be done.

    ``before`` may be at most the stream's version + 1 (everything goes). A stream created by
    a repository keeps what its loads need: ``before`` at most its newest snapshot's version
    + 1 (``newest_snapshot``; None: it has none, and nothing can be truncated).
    """
    check_before(before)
    if info is None or info.version == 0:
        return False
    check_open(info)
    stream_id = info.stream_id
    if before > info.version + 1:
        raise InvalidEvent(
            f"stream {stream_id!r}: cannot truncate before version {before}: the stream is at "
            f"version {info.version}"
        )
    if info.aggregate_type is not None:
        bound = 1 if newest_snapshot is None else newest_snapshot + 1
        if before > bound:
            why = (
                "it has no snapshot"
                if newest_snapshot is None
                else f"its newest snapshot is at version {newest_snapshot}"
            )
            raise InvalidEvent(
                f"stream {stream_id!r}: cannot truncate before version {before}: loads of its "
                f"{info.aggregate_type!r} aggregate need the events after its newest snapshot, "
                f"and {why} (truncate before {bound} at most, or take a snapshot first)"
            )
    return before > info.first_version
