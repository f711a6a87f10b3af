"""A partitioned store of 3 partitions (3 private PostgreSQL servers) passes the contract.

Two placements run the contract. By hash (the default), each test's streams spread over the
three partitions: every test but those below. With every stream on the home partition (a
placement by tenant that names it), the tests that need several streams in one transaction,
or an inline projection, run too; their reads still merge all three partitions' logs.

Not collected by hash, and why (each runs with the streams on the home partition):
- multi-stream appends of streams spread by hash (``test_append_many_writes_every_stream``,
  ``..._with_one_conflicting_stream_...``, ``test_reappending_a_multi_stream_append...``,
  ``test_an_append_many_with_one_stream_of_another_type...``,
  ``test_racing_appends_to_shared_streams...`` and the model test, whose random steps append
  to several streams at once): a transaction spans one partition, so such an append raises
  ``CrossPartitionAppend`` by design (tests/test_partitioned_postgres.py checks it);
- ``test_appending_an_event_id_stored_in_another_stream_raises_and_writes_nothing``: event
  ids are unique per partition; a repeated id in a stream of another partition is not seen
  (a retry goes to the same stream, so the same partition, and is refused there);
- ``test_read_all_checkpoints_increase_strictly``: the merged log has no total order across
  partitions (each partition's own order is kept: tests/test_partitioned_postgres.py);
- ``test_a_reader_tailing_the_log_while_writers_append_sees_every_event_once``: it also wants
  the tail's order to equal a later read's, but how partitions interleave depends on when
  each one's events became readable; the tail seeing every event once, each partition in
  order, is tests/test_partitioned_postgres.py's concurrent writers test;
- inline projections (``InlineContract``, and ``test_a_reader_never_passes_a_writer...``,
  which holds a writer with one): their handlers run in the database of the stream's
  partition, their tables and the test's reads are on the home partition only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import pytest

import facta
from facta.backends.partitioned.recorder import PartitionedRecorder
from facta.backends.partitioned.recorder_async import AsyncPartitionedRecorder
from facta.backends.partitioned.routing import Placement
from facta.backends.postgres.recorder import PostgresRecorder
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.testing._appending import AppendContract
from facta.testing._appending_async import AsyncAppendContract
from facta.testing._bad_input import BadInputContract
from facta.testing._bad_input_async import AsyncBadInputContract
from facta.testing._inboxes import AsyncInboxContract
from facta.testing._inline import InlineContract
from facta.testing._inline_async import AsyncInlineContract
from facta.testing._lifecycle import LifecycleContract
from facta.testing._lifecycle_async import AsyncLifecycleContract
from facta.testing._modelling import ModelContract
from facta.testing._modelling_async import AsyncModelContract
from facta.testing._projecting import ProjectionContract
from facta.testing._projecting_async import AsyncProjectionContract
from facta.testing._racing import RaceContract
from facta.testing._racing_async import AsyncRaceContract
from facta.testing._reading import ReadContract
from facta.testing._reading_async import AsyncReadContract
from facta.testing._stream_types import StreamTypeContract
from facta.testing._stream_types_async import AsyncStreamTypeContract
from facta.testing._subscribing import SubscriptionContract
from facta.testing._subscribing_async import AsyncSubscriptionContract
from facta.testing.clusters import Cluster, private_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NAMES = ("p1", "p2", "p3")
SCHEMA = f"contract_{uuid.uuid4().hex[:8]}"


def on_home(stream_id: str) -> str:
    """The placement that keeps every stream on the home partition."""
    return NAMES[0]


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Cluster]]:
    """Three private PostgreSQL servers, one per partition."""
    with private_cluster() as one, private_cluster() as two, private_cluster() as three:
        yield [one, two, three]


def recorder(servers: list[Cluster], placement: Placement | None = None) -> PartitionedRecorder:
    urls = {name: server.url(SCHEMA) for name, server in zip(NAMES, servers, strict=True)}
    partitions = {name: PostgresRecorder(url, pool_size=4) for name, url in urls.items()}
    return PartitionedRecorder(partitions, placement)


def async_recorder(
    servers: list[Cluster], placement: Placement | None = None
) -> AsyncPartitionedRecorder:
    urls = {name: server.url(SCHEMA) for name, server in zip(NAMES, servers, strict=True)}
    partitions = {name: AsyncPostgresRecorder(url, pool_size=4) for name, url in urls.items()}
    return AsyncPartitionedRecorder(partitions, placement)


@pytest.fixture(scope="module")
def shared_store(servers: list[Cluster]) -> Iterator[facta.EventStore]:
    """One sync store, placed by hash, for every test of the sync suite."""
    with facta.EventStore(recorder(servers)) as store:
        yield store


# Not collected with hash placement (the module's docstring says why): pytest skips
# attributes that are None.
_ACROSS_PARTITIONS = (
    "test_append_many_writes_every_stream",
    "test_append_many_with_one_conflicting_stream_writes_to_no_stream",
    "test_reappending_a_multi_stream_append_reports_every_stream_already_appended",
    "test_an_append_many_with_one_stream_of_another_type_writes_no_stream",
    "test_racing_appends_to_shared_streams_keep_each_streams_versions_in_log_order",
    "test_random_appends_and_reads_agree_with_a_model",
    "test_appending_an_event_id_stored_in_another_stream_raises_and_writes_nothing",
    "test_read_all_checkpoints_increase_strictly",
    "test_a_reader_never_passes_a_writer_that_holds_an_older_position",
    "test_a_reader_tailing_the_log_while_writers_append_sees_every_event_once",
)


T = TypeVar("T")


def across_partitions_deselected(cls: type[T]) -> type[T]:
    """``cls`` without the contract tests that need one database (``_ACROSS_PARTITIONS``)."""
    for name in _ACROSS_PARTITIONS:
        setattr(cls, name, None)
    return cls


@across_partitions_deselected
class TestPartitionedStore(
    AppendContract,
    ReadContract,
    StreamTypeContract,
    LifecycleContract,
    BadInputContract,
    RaceContract,
    ProjectionContract,
    SubscriptionContract,
    ModelContract,
):
    """The contract but the inline tests (facta.testing.EventStoreContract), placed by hash."""

    @pytest.fixture
    def store(self, shared_store: facta.EventStore) -> facta.EventStore:
        return shared_store


class TestPartitionedStoreOnHome(
    AppendContract, ReadContract, StreamTypeContract, RaceContract, InlineContract, ModelContract
):
    """The contract's tests of atomic multi-stream appends and inline projections, with every
    stream on the home partition."""

    @pytest.fixture
    def store(self, servers: list[Cluster]) -> Iterator[facta.EventStore]:
        with facta.EventStore(recorder(servers, on_home)) as store:
            yield store


@across_partitions_deselected
@pytest.mark.asyncio
class TestAsyncPartitionedStore(
    AsyncAppendContract,
    AsyncReadContract,
    AsyncStreamTypeContract,
    AsyncLifecycleContract,
    AsyncBadInputContract,
    AsyncRaceContract,
    AsyncProjectionContract,
    AsyncSubscriptionContract,
    AsyncInboxContract,
    AsyncModelContract,
):
    """The async contract but the inline tests, placed by hash."""

    @pytest.fixture
    def store(self, async_store: facta.AsyncEventStore) -> facta.AsyncEventStore:
        return async_store

    @pytest.fixture
    async def async_store(self, servers: list[Cluster]) -> AsyncIterator[facta.AsyncEventStore]:
        async with facta.AsyncEventStore(async_recorder(servers)) as store:
            yield store


@pytest.mark.asyncio
class TestAsyncPartitionedStoreOnHome(
    AsyncAppendContract,
    AsyncReadContract,
    AsyncStreamTypeContract,
    AsyncRaceContract,
    AsyncInlineContract,
    AsyncModelContract,
):
    """The async contract's tests of atomic multi-stream appends and inline projections, with
    every stream on the home partition."""

    @pytest.fixture
    def store(self, async_store: facta.AsyncEventStore) -> facta.AsyncEventStore:
        return async_store

    @pytest.fixture
    async def async_store(self, servers: list[Cluster]) -> AsyncIterator[facta.AsyncEventStore]:
        async with facta.AsyncEventStore(async_recorder(servers, on_home)) as store:
            yield store
