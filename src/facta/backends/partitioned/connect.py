"""Open a partitioned store from its partitions' PostgreSQL URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from facta.backends.partitioned.routing import Placement
from facta.backends.postgres.options import Options
from facta.codec import Codec
from facta.store import EventStore
from facta.store_async import AsyncEventStore

__all__ = ["connect_partitioned", "connect_partitioned_async"]


def connect_partitioned(
    urls: Mapping[str, str],
    *,
    placement: Placement | None = None,
    codec: Codec | None = None,
    **options: Unpack[Options],
) -> EventStore:
    """A sync store over ``urls`` (partition name: PostgreSQL URL; the first is home).

    ``placement`` (a function of the stream id, such as ``by_tenant()``) names each stream's
    partition; without it, streams go by slice through the home partition's routes. The
    PostgreSQL ``options`` (``pool_size``, ``schema``...) apply to every partition.
    """
    from facta.backends.partitioned.recorder import PartitionedRecorder
    from facta.backends.postgres.recorder import PostgresRecorder

    partitions = {name: PostgresRecorder(url, **options) for name, url in urls.items()}
    return EventStore(PartitionedRecorder(partitions, placement), codec)


def connect_partitioned_async(
    urls: Mapping[str, str],
    *,
    placement: Placement | None = None,
    codec: Codec | None = None,
    **options: Unpack[Options],
) -> AsyncEventStore:
    """An async store over ``urls``, as :func:`connect_partitioned`."""
    from facta.backends.partitioned.recorder_async import AsyncPartitionedRecorder
    from facta.backends.postgres.recorder_async import AsyncPostgresRecorder

    partitions = {name: AsyncPostgresRecorder(url, **options) for name, url in urls.items()}
    return AsyncEventStore(AsyncPartitionedRecorder(partitions, placement), codec)
