"""Partitioned stores: one logical event store over several PostgreSQL databases or servers.

    store = connect_partitioned({"p1": url1, "p2": url2, "p3": url3})

Each stream lives in one partition, placed by slice through a routing table kept in the first
(home) partition, or by a function of the stream id (:func:`by_tenant`). Everything about one
stream, and appends to several streams of one partition, behave as on one database; an append
spanning partitions raises ``facta.CrossPartitionAppend``, writing nothing. ``read_all``,
subscriptions, projections and relays read every partition after a composite checkpoint
(:mod:`facta.backends.partitioned.checkpoint`). See docs/guides/partitions.md.
"""

from __future__ import annotations

from facta.backends.partitioned.checkpoint import checkpoint_parts, partitioned_checkpoint
from facta.backends.partitioned.connect import connect_partitioned, connect_partitioned_async
from facta.backends.partitioned.routing import Placement, Routes, by_tenant

__all__ = [
    "Placement",
    "Routes",
    "by_tenant",
    "checkpoint_parts",
    "connect_partitioned",
    "connect_partitioned_async",
    "partitioned_checkpoint",
]
