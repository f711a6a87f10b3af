"""Where a partitioned store keeps each stream: a placement, from stream id to partition name.

Two placements exist. By hash (the default): the stream's slice (:func:`facta.slices.slice_of`,
0 to 1,023) is looked up in :class:`Routes`, a table of slice ranges and the partition holding
each, kept in the home partition's catalog so that every process routes alike. By tenant:
a function of the stream id (:func:`by_tenant` takes the part before a separator) names the
partition. Either way a stream never changes partition, so its order and versions stay in one
database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from facta.errors import ConfigurationError
from facta.slices import SLICES, SliceRange, slice_of, split_slices

__all__ = ["Placement", "Routes", "by_tenant"]

#: A placement: the name of the partition that holds a stream id.
Placement = Callable[[str], str]


class Routes:
    """Which partition holds each of the 1,024 slices."""

    def __init__(self, owners: Sequence[str]) -> None:
        if len(owners) != SLICES:
            raise ConfigurationError(f"routes name a partition for each of {SLICES} slices")
        self.owners = tuple(owners)

    @classmethod
    def even(cls, names: Sequence[str]) -> Routes:
        """The slices split into contiguous ranges of nearly equal size, one per partition."""
        return cls.from_ranges(zip(split_slices(len(names)), names, strict=True))

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[SliceRange, str]]) -> Routes:
        """Routes from ``(slice range, partition)`` pairs that cover every slice once."""
        owners: list[str | None] = [None] * SLICES
        for (first, last), name in ranges:
            for slice_ in range(first, last + 1):
                if owners[slice_] is not None:
                    raise ConfigurationError(f"slice {slice_} is routed to two partitions")
                owners[slice_] = name
        missing = [i for i, owner in enumerate(owners) if owner is None]
        if missing:
            raise ConfigurationError(f"slices {missing[0]}... are routed to no partition")
        return cls([owner for owner in owners if owner is not None])

    def ranges(self) -> list[tuple[SliceRange, str]]:
        """The routes as contiguous ranges, in slice order."""
        found: list[tuple[SliceRange, str]] = []
        first = 0
        for slice_ in range(1, SLICES + 1):
            if slice_ == SLICES or self.owners[slice_] != self.owners[first]:
                found.append((SliceRange(first, slice_ - 1), self.owners[first]))
                first = slice_
        return found

    def partition_of(self, stream_id: str) -> str:
        """The partition holding ``stream_id``."""
        return self.owners[slice_of(stream_id)]


def by_tenant(separator: str = ":") -> Placement:
    """A placement by tenant: the stream id's part before ``separator`` names its partition.

    >>> by_tenant()("acme:order-7")
    'acme'
    """

    def tenant(stream_id: str) -> str:
        return stream_id.split(separator, 1)[0]

    return tenant
