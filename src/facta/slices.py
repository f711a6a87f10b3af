"""Slices: a stable split of the stream ids into 1,024 parts, for work shared out by stream.

A stream's slice is a pure function of its id, the same in every process, release and
database: the first 16 bits of the id's MD5 (of its UTF-8 bytes), modulo :data:`SLICES`.
Projection workers lease ranges of slices, and partitioned stores route slices to
partitions; every event of a stream is in the stream's slice, so per-stream order holds
inside any range. PostgreSQL computes the same value with :data:`SLICE_SQL`.

>>> slice_of("order-42")
833
>>> slice_of("order-42") == slice_of("order-42")
True
>>> SliceRange(0, 511).contains(slice_of("order-42"))
False
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["SLICES", "SLICE_SQL", "SliceRange", "slice_of", "split_slices"]

#: How many slices there are; never changes (stored slices depend on it).
SLICES = 1024

#: The same function in SQL, of a text column or parameter named ``{stream}``.
SLICE_SQL = "(('x' || substr(md5({stream}), 1, 4))::bit(16)::int & 1023)"


def slice_of(stream_id: str) -> int:
    """The slice (0 to 1,023) of a stream id."""
    digest = hashlib.md5(stream_id.encode(), usedforsecurity=False).digest()
    return ((digest[0] << 8) | digest[1]) & (SLICES - 1)


class SliceRange(NamedTuple):
    """The slices ``first`` to ``last``, both included."""

    first: int
    last: int

    def contains(self, slice_: int) -> bool:
        """Whether ``slice_`` is in this range."""
        return self.first <= slice_ <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def split_slices(parts: int) -> list[SliceRange]:
    """All slices in ``parts`` contiguous ranges of (nearly) equal size.

    >>> [str(r) for r in split_slices(3)]
    ['0-340', '341-681', '682-1023']
    """
    if not 1 <= parts <= SLICES:
        raise ValueError(f"parts must be between 1 and {SLICES}, not {parts}")
    bounds = [SLICES * i // parts for i in range(parts + 1)]
    return [SliceRange(bounds[i], bounds[i + 1] - 1) for i in range(parts)]
