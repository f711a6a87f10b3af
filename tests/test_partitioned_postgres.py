"""Partitioned stores on 3 private PostgreSQL servers: placement, refusal of appends across
partitions, composite checkpoints under concurrent writers, runners, subscriptions, relays."""

from __future__ import annotations

import pickle
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

import facta
from facta.appending import StreamAppend
from facta.backends.partitioned import (
    Routes,
    by_tenant,
    checkpoint_parts,
    connect_partitioned,
    connect_partitioned_async,
    partitioned_checkpoint,
)
from facta.backends.partitioned.moving import move_partition
from facta.backends.partitioned.recorder import PartitionedRecorder
from facta.errors import ConfigurationError, CrossPartitionAppend, InvalidCheckpoint
from facta.projections import Projection, ProjectionRunner, handles
from facta.projections.statuses import statuses
from facta.publishing import Broker, Message, Relay
from facta.slices import slice_of
from facta.testing.clusters import Cluster, private_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NAMES = ("p1", "p2", "p3")


@facta.event("tests.partitioned.Counted")
@dataclass(frozen=True)
class Counted:
    n: int


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Cluster]]:
    """Three private PostgreSQL servers, one per partition."""
    with private_cluster() as one, private_cluster() as two, private_cluster() as three:
        yield [one, two, three]


@pytest.fixture
def urls(servers: list[Cluster]) -> dict[str, str]:
    """A fresh schema on each server, one partition each."""
    schema = f"part_{uuid.uuid4().hex[:8]}"
    return {name: server.url(schema) for name, server in zip(NAMES, servers, strict=True)}


def partitioned(store: facta.EventStore) -> PartitionedRecorder:
    assert isinstance(store.recorder, PartitionedRecorder)
    return store.recorder


def stream_in(store: facta.EventStore, partition: str, prefix: str = "s") -> str:
    """A fresh stream id that the store places in ``partition``."""
    recorder = partitioned(store)
    while True:
        stream = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if recorder.partition_of(stream) == partition:
            return stream


# -- placement ---------------------------------------------------------------------------


def test_even_routes_give_each_partition_one_contiguous_range_of_slices() -> None:
    routes = Routes.even(NAMES)
    assert [(str(r), name) for r, name in routes.ranges()] == [
        ("0-340", "p1"),
        ("341-681", "p2"),
        ("682-1023", "p3"),
    ]
    assert Routes.from_ranges(routes.ranges()).owners == routes.owners
    assert routes.partition_of("order-42") == routes.owners[slice_of("order-42")]


def test_routes_that_leave_a_slice_out_are_refused() -> None:
    ranges = Routes.even(NAMES).ranges()[:-1]
    with pytest.raises(ConfigurationError, match="routed to no partition"):
        Routes.from_ranges(ranges)


def test_a_tenant_placement_names_the_partition_by_the_ids_prefix() -> None:
    assert by_tenant()("acme:order-1") == "acme"
    assert by_tenant("/")("globex/x:1") == "globex"


def test_streams_are_stored_in_the_partition_their_slice_routes_to(urls: dict[str, str]) -> None:
    with connect_partitioned(urls) as store:
        recorder = partitioned(store)
        streams = [f"order-{n}" for n in range(30)]
        for stream in streams:
            store.append(stream, [Counted(1)], facta.NO_STREAM)
        assert recorder.routes is not None
        for stream in streams:
            home = recorder.routes.owners[slice_of(stream)]
            held = {name: p.stream_version(stream) for name, p in recorder.partitions.items()}
            assert held == {name: int(name == home) for name in NAMES}
        assert {recorder.partition_of(s) for s in streams} == set(NAMES)


def test_the_routes_are_kept_in_the_home_partition_and_read_by_every_store(
    urls: dict[str, str], servers: list[Cluster]
) -> None:
    schema = urls["p1"].split("schema=")[1]
    with connect_partitioned(urls) as store:
        store.append("order-1", [Counted(1)], facta.NO_STREAM)
    # Route every slice to p3 in the catalog: stores opened later place by the catalog.
    servers[0].execute(f"UPDATE \"{schema}\".facta_partition_routes SET partition = 'p3'")
    with connect_partitioned(urls) as store:
        assert partitioned(store).partition_of("order-2") == "p3"
        rows = servers[0].execute(f'SELECT count(*) FROM "{schema}".facta_partition_routes')
        assert rows == [(3,)]


def test_a_store_opened_with_other_partitions_than_its_catalog_is_refused(
    urls: dict[str, str],
) -> None:
    with connect_partitioned(urls) as store:
        store.append("order-1", [Counted(1)], facta.NO_STREAM)
    with (
        connect_partitioned({"p1": urls["p1"], "p2": urls["p2"]}) as store,
        pytest.raises(ConfigurationError, match="has partitions"),
    ):
        store.stream_version("order-1")


def test_a_tenant_placement_keeps_each_tenants_streams_in_its_partition(
    urls: dict[str, str],
) -> None:
    with connect_partitioned(urls, placement=by_tenant()) as store:
        for name in NAMES:
            store.append(f"{name}:order-1", [Counted(1)], facta.NO_STREAM)
        for name, partition in partitioned(store).partitions.items():
            assert [s.stream_id for s in partition.streams(None, 10)] == [f"{name}:order-1"]
        with pytest.raises(ConfigurationError, match="'p9'"):
            store.append("p9:order-1", [Counted(1)], facta.NO_STREAM)


# -- appends -----------------------------------------------------------------------------


def test_an_append_across_partitions_is_refused_naming_them_and_writes_nothing(
    urls: dict[str, str],
) -> None:
    with connect_partitioned(urls) as store:
        one, two = stream_in(store, "p1"), stream_in(store, "p2")
        start = store.recorder.last_checkpoint()
        with pytest.raises(CrossPartitionAppend) as raised:
            store.append_many(
                [
                    StreamAppend(one, [Counted(1)], facta.NO_STREAM),
                    StreamAppend(two, [Counted(2)], 0),
                ]
            )
        assert raised.value.partitions == {"p1": [one], "p2": [two]}
        assert repr(one) in str(raised.value)
        assert "p2" in str(raised.value)
        assert (store.stream_version(one), store.stream_version(two)) == (0, 0)
        assert list(store.read_all(start)) == []


@pytest.mark.parametrize("partition", NAMES)
def test_a_multi_stream_append_within_a_partition_is_atomic(
    urls: dict[str, str], partition: str
) -> None:
    with connect_partitioned(urls, placement=by_tenant()) as store:
        one, two = f"{partition}:a", f"{partition}:b"
        store.append_many(
            [StreamAppend(one, [Counted(1)], facta.NO_STREAM), StreamAppend(two, [Counted(2)], 0)]
        )
        with pytest.raises(facta.ConcurrencyError):
            store.append_many(
                [StreamAppend(one, [Counted(3)], 1), StreamAppend(two, [Counted(4)], 0)]
            )
        assert (store.stream_version(one), store.stream_version(two)) == (1, 1)


# -- the composite checkpoint ------------------------------------------------------------


def test_a_plain_checkpoint_other_than_the_start_is_refused(urls: dict[str, str]) -> None:
    with connect_partitioned(urls) as store, pytest.raises(InvalidCheckpoint, match="partition"):
        list(store.read_all(facta.Checkpoint(5, 7)))


def test_an_events_checkpoint_holds_every_partitions_place_and_survives_pickling(
    urls: dict[str, str],
) -> None:
    with connect_partitioned(urls, placement=by_tenant()) as store:
        for name in NAMES:
            store.append(f"{name}:x", [Counted(1), Counted(2)], facta.NO_STREAM)
        log = list(store.read_all())
        assert len(log) == 6
        middle = pickle.loads(pickle.dumps(log[2].checkpoint))
        assert middle == log[2].checkpoint
        rest = list(store.read_all(middle))
        assert [e.event_id for e in rest] == [e.event_id for e in log[3:]]
        parts = checkpoint_parts(log[-1].checkpoint)
        assert set(parts) == set(NAMES)
        again = partitioned_checkpoint(parts)
        assert list(store.read_all(again)) == []
        assert store.recorder.last_checkpoint() == facta.Checkpoint()  # shows no event's pair
        assert checkpoint_parts(store.recorder.last_checkpoint()) == parts


def test_a_tail_under_writers_on_every_partition_sees_each_event_once_in_partition_order(
    urls: dict[str, str],
) -> None:
    writers, each = 6, 40
    with connect_partitioned(urls, placement=by_tenant(), pool_size=8) as store:
        streams = [f"{NAMES[n % 3]}:w{n}" for n in range(writers)]
        start = store.recorder.last_checkpoint()
        done = threading.Event()
        seen: list[facta.RecordedEvent] = []

        def write(stream: str) -> None:
            for n in range(each):
                store.append(stream, [Counted(n)], facta.ANY)

        def tail() -> None:
            checkpoint = start
            while True:
                finished = done.is_set()
                for event in store.read_all(checkpoint, batch_size=7):
                    seen.append(event)
                    checkpoint = event.checkpoint
                if finished and len(seen) >= writers * each:
                    return

        threads = [threading.Thread(target=write, args=(s,)) for s in streams]
        reader = threading.Thread(target=tail)
        for thread in [*threads, reader]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        reader.join(60)
        assert not reader.is_alive()
        assert len(seen) == len({e.event_id for e in seen}) == writers * each
        for stream in streams:
            assert [e.version for e in seen if e.stream_id == stream] == list(range(1, each + 1))
        for name, partition in partitioned(store).partitions.items():
            own = [
                e.event_id for e in partition.read_all(checkpoint_parts(start)[name], None, 10**6)
            ]
            assert [e.event_id for e in seen if e.stream_id.startswith(f"{name}:")] == own


# -- consumers -----------------------------------------------------------------------------


class Tally(Projection[psycopg.Connection[Any]]):
    name = "tally"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS tally (stream_id text PRIMARY KEY, n bigint)")

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM tally")

    @handles(Counted)
    def counted(self, event: facta.RecordedEvent[Counted], conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "INSERT INTO tally VALUES (%s, 1) ON CONFLICT (stream_id)"
            " DO UPDATE SET n = tally.n + 1",
            (event.stream_id,),
        )


def tally(store: facta.EventStore) -> dict[str, int]:
    with store.recorder.transaction() as conn:
        return dict(conn.execute("SELECT stream_id, n FROM tally").fetchall())


def append_everywhere(store: facta.EventStore, streams: Sequence[str], count: int) -> None:
    for stream in streams:
        store.append(stream, [Counted(n) for n in range(count)], facta.ANY)


def test_a_projection_runner_applies_every_partitions_events_once_and_resumes(
    urls: dict[str, str], servers: list[Cluster]
) -> None:
    with connect_partitioned(urls) as store:
        streams = [stream_in(store, name, "t") for name in NAMES for _ in range(2)]
        append_everywhere(store, streams, 3)
        with ProjectionRunner(store, Tally(), batch_size=4) as runner:
            assert runner.catch_up() == 18
        assert tally(store) == dict.fromkeys(streams, 3)
        append_everywhere(store, streams, 2)
        with ProjectionRunner(store, Tally(), batch_size=4) as runner:
            assert runner.lag() == 12
            assert runner.catch_up() == 12
            assert runner.lag() == 0
        assert tally(store) == dict.fromkeys(streams, 5)
        (status,) = [s for s in statuses(store) if s.name == "tally"]
        assert status.lag == 0
        assert set(checkpoint_parts(status.checkpoint)) == set(NAMES)
        schema = urls["p1"].split("schema=")[1]
        rows = servers[0].execute(
            f'SELECT partition FROM "{schema}".facta_partition_checkpoints ORDER BY 1'
        )
        assert rows == [(name,) for name in NAMES]


def test_a_durable_subscription_resumes_in_every_partition(urls: dict[str, str]) -> None:
    with connect_partitioned(urls, placement=by_tenant()) as store:
        streams = [f"{name}:sub" for name in NAMES]
        append_everywhere(store, streams, 2)
        with store.subscribe(name="follower") as subscription:
            got = []
            for event in subscription:
                got.append(event)
                if len(got) == 3:
                    subscription.ack(event)
                    break
        append_everywhere(store, streams, 1)
        with store.subscribe(name="follower") as subscription:
            rest = []
            for event in subscription:
                rest.append(event)
                if len(rest) == 6:
                    break
        assert {e.event_id for e in got}.isdisjoint(e.event_id for e in rest)
        assert sorted((e.stream_id, e.version) for e in got + rest) == sorted(
            (s, v) for s in streams for v in (1, 2, 3)
        )


class Outbox(Broker):
    def __init__(self) -> None:
        self.received: list[Message] = []

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        self.received.extend(messages)
        return len(messages)


async def test_a_relay_publishes_every_partitions_events_once(urls: dict[str, str]) -> None:
    async with connect_partitioned_async(urls, placement=by_tenant()) as store:
        for name in NAMES:
            await store.append(f"{name}:r", [Counted(1), Counted(2)], facta.NO_STREAM)
        broker = Outbox()
        async with Relay(store, broker, name="out") as relay:
            assert await relay.catch_up() == 6
        await store.append("p2:r", [Counted(3)], 2)
        async with Relay(store, broker, name="out") as relay:
            assert await relay.catch_up() == 1
        published = [
            (m.headers["Facta-Stream"], m.headers["Facta-Version"]) for m in broker.received
        ]
        assert sorted(published) == sorted(
            [(f"{n}:r", "1") for n in NAMES] + [(f"{n}:r", "2") for n in NAMES] + [("p2:r", "3")]
        )


# -- moving a partition ----------------------------------------------------------------------


def test_a_moved_partition_keeps_its_streams_and_every_readers_place(
    urls: dict[str, str],
) -> None:
    with private_cluster() as elsewhere:
        with connect_partitioned(urls, placement=by_tenant()) as store:
            streams = [f"{name}:m" for name in NAMES]
            append_everywhere(store, streams, 2)
            with ProjectionRunner(store, Tally()) as runner:
                assert runner.catch_up() == 6
            before = list(store.read_all())
            middle = before[3].checkpoint
            new_url = elsewhere.url(urls["p2"].split("schema=")[1])
            move_partition(store, "p2", new_url)
            assert partitioned(store).partitions["p2"].location != urls["p2"]
            store.append("p2:m", [Counted(9)], 2)  # after the copied events, on the new server
            assert [e.version for e in store.read_stream("p2:m")] == [1, 2, 3]
            rest = list(store.read_all(middle))
            assert [e.event_id for e in rest[:-1]] == [e.event_id for e in before[4:]]
            assert (rest[-1].stream_id, rest[-1].version) == ("p2:m", 3)
            with ProjectionRunner(store, Tally()) as runner:
                assert runner.catch_up() == 1
            assert tally(store) == {"p1:m": 2, "p2:m": 3, "p3:m": 2}
        with pytest.raises(ConfigurationError, match="moved"), connect_partitioned(urls) as stale:
            stale.stream_version("p1:m")
        with connect_partitioned({**urls, "p2": new_url}, placement=by_tenant()) as reopened:
            assert reopened.stream_version("p2:m") == 3
            assert len(list(reopened.read_all())) == 7


def test_the_home_partition_cannot_be_moved(urls: dict[str, str]) -> None:
    with (
        connect_partitioned(urls) as store,
        pytest.raises(ConfigurationError, match="home partition"),
    ):
        move_partition(store, "p1", urls["p2"])


def test_a_read_only_partitioned_store_reads_what_another_wrote(urls: dict[str, str]) -> None:
    with connect_partitioned(urls) as store:
        store.append("order-1", [Counted(1)], facta.NO_STREAM)
    with connect_partitioned(urls, read_only=True) as reader:
        assert reader.stream_version("order-1") == 1
        assert [e.stream_id for e in reader.read_all()] == ["order-1"]
