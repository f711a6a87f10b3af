"""The composite checkpoint of a partitioned store: one place per partition, in a Checkpoint.

Every consumer of the global log (``read_all``, subscriptions, projection runners, relays)
handles a :class:`~facta.Checkpoint`, the pair ``(transaction_id, position)``. A partitioned
store reads each partition's log after that partition's own place and hands out events whose
``transaction_id`` is a :class:`PartitionPlaces`: the event's transaction id in its partition
(an ``int``, so equality, ordering and printing are unchanged) that also carries the place
reached in every partition just after that event. ``event.checkpoint`` is therefore a plain
``Checkpoint`` that a partitioned store resumes from exactly, and code written for one
database keeps working. What the pair of integers alone cannot hold is the other partitions'
places: store :func:`checkpoint_parts` (or use durable subscriptions and projections, whose
places the store keeps per partition) rather than the two numbers.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from facta.errors import InvalidCheckpoint
from facta.events import Checkpoint
from facta.records import StoredEvent

_START = Checkpoint()

__all__ = ["PartitionPlaces", "checkpoint_parts", "merge_pages", "partitioned_checkpoint"]

Places = tuple[tuple[str, int, int], ...]  # (partition, transaction_id, position), by name


class PartitionPlaces(int):
    """A transaction id (this int) carrying every partition's place (``parts``)."""

    parts: Places

    def __new__(cls, transaction_id: int, parts: Places) -> PartitionPlaces:
        made = super().__new__(cls, transaction_id)
        made.parts = parts
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (int(self), self.parts)


def partitioned_checkpoint(
    parts: Mapping[str, Checkpoint], last: Checkpoint = _START
) -> Checkpoint:
    """A checkpoint of a partitioned store from each partition's place (others: the start).

    ``last`` is the pair it shows (and compares equal to): the last event's, where known.
    """
    places = tuple(sorted((name, int(c.transaction_id), c.position) for name, c in parts.items()))
    return Checkpoint(PartitionPlaces(int(last.transaction_id), places), last.position)


def checkpoint_parts(checkpoint: Checkpoint) -> dict[str, Checkpoint]:
    """Each partition's place in a partitioned store's checkpoint ({} for ``Checkpoint()``).

    Raises ``InvalidCheckpoint`` for any other plain pair: it names no partition.
    """
    transaction_id = checkpoint.transaction_id
    if isinstance(transaction_id, PartitionPlaces):
        return {name: Checkpoint(t, p) for name, t, p in transaction_id.parts}
    if checkpoint == Checkpoint():
        return {}
    raise InvalidCheckpoint(
        f"{checkpoint} is a place in one database's log; a partitioned store needs one place "
        "per partition: resume from one of its events' .checkpoint, a durable subscription or "
        "projection, or facta.backends.partitioned.partitioned_checkpoint({name: place})"
    )


def merge_pages(
    pages: Mapping[str, Sequence[StoredEvent]], places: Mapping[str, Checkpoint], limit: int
) -> list[StoredEvent]:
    """Up to ``limit`` events of the partitions' pages, each partition's in its own order.

    Interleaved by ``recorded_at`` (then partition name); each event's transaction id becomes
    a :class:`PartitionPlaces` holding every partition's place just after it. Every page must
    be what that partition's ``read_all`` returned after ``places[name]``.
    """
    reached = {name: (int(c.transaction_id), c.position) for name, c in places.items()}
    heads = [(page[0].recorded_at, name, 0) for name, page in pages.items() if page]
    heapq.heapify(heads)
    merged: list[StoredEvent] = []
    while heads and len(merged) < limit:
        _, name, index = heapq.heappop(heads)
        page = pages[name]
        row = page[index]
        reached[name] = (row.transaction_id, row.position)
        parts = tuple(sorted((n, t, p) for n, (t, p) in reached.items()))
        merged.append(row._replace(transaction_id=PartitionPlaces(row.transaction_id, parts)))
        if index + 1 < len(page):
            heapq.heappush(heads, (page[index + 1].recorded_at, name, index + 1))
    return merged
