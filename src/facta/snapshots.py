"""Snapshot records: an aggregate's encoded state at a stream version, with a checksum.

Pure values; how snapshots are taken and trusted is the repository's business.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

__all__ = ["SnapshotRecord", "checksum"]


class SnapshotRecord(NamedTuple):
    """A stored snapshot. ``checksum`` is the CRC-32 of ``state`` as stored."""

    stream_id: str
    version: int
    aggregate_type: str
    schema_version: int
    encoding: int
    checksum: int
    state: bytes


def checksum(state: bytes) -> int:
    """The checksum stored with a snapshot's state (CRC-32: catches corruption, not attacks)."""
    return zlib.crc32(state)
