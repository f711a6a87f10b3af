"""Reads from PostgreSQL hot standbys: routing, read-your-writes, and a log that never skips.

Each test runs on a private primary with a streaming replica (``facta.testing.clusters``),
shared by the module, in a schema of its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from click.testing import CliRunner

if TYPE_CHECKING:
    from tests.eight_writers import HOT, out_of_order, tail_eight_writers
else:  # tests/ is on the path under pytest
    from eight_writers import HOT, out_of_order, tail_eight_writers

import facta
from facta.appending import StreamAppend
from facta.backends.postgres.queries import Queries
from facta.backends.postgres.recorder import PostgresRecorder
from facta.cli import main
from facta.errors import ConfigurationError, ReplicaBehind
from facta.events import Checkpoint, RecordedEvent
from facta.projections import Projection, ProjectionRunner, handles
from facta.publishing import Broker, Message, Relay
from facta.testing.clusters import Cluster, ClustersUnavailable, private_cluster
from facta.testing.events import Happened

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PATIENCE = 60.0  # seconds a reader waits for the replica (or other sessions) to catch up


@facta.event("test.postgres_replicas.Moved")
@dataclass(frozen=True)
class Moved:
    by: int


class Position(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.at = 0

    def move(self, by: int) -> None:
        self.record(Moved(by))

    def apply(self, event: object) -> None:
        if isinstance(event, Moved):
            self.at += event.by


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Cluster, Cluster]]:
    try:
        with private_cluster() as primary, primary.replica() as standby:
            yield primary, standby
    except ClustersUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def primary(servers: tuple[Cluster, Cluster]) -> Cluster:
    return servers[0]


@pytest.fixture
def standby(servers: tuple[Cluster, Cluster]) -> Cluster:
    return servers[1]


@pytest.fixture
def schema() -> str:
    return f"replicas_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(primary: Cluster, standby: Cluster, schema: str) -> Iterator[facta.EventStore]:
    with facta.connect(
        primary.url(schema), replicas=[standby.url()], replica_timeout=PATIENCE, pool_size=12
    ) as opened:
        opened.stream_version("migrate-now")
        standby.wait_for_replay(primary)  # the schema is on the replica too
        yield opened


def pg(store: facta.EventStore) -> PostgresRecorder:
    assert isinstance(store.recorder, PostgresRecorder)
    return store.recorder


@contextmanager
def replay_paused(primary: Cluster, standby: Cluster) -> Iterator[None]:
    """The standby replays nothing inside this block (it has replayed everything before)."""
    standby.wait_for_replay(primary)
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + PATIENCE
        while standby.execute("SELECT pg_get_wal_replay_pause_state()")[0][0] != "paused":
            assert time.monotonic() < deadline, "the standby never paused"
            time.sleep(0.01)
        yield
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")


def caught_up(store: facta.EventStore, primary: Cluster, standby: Cluster) -> facta.EventStore:
    """``store``, once the replica has replayed everything and its readers see all of it."""
    standby.wait_for_replay(primary, PATIENCE)
    assert pg(store).wait_until_readable(PATIENCE), pg(store).reader_lag()
    standby.wait_for_replay(primary, PATIENCE)
    return store


# -- routing -------------------------------------------------------------------------------


def test_reads_go_to_the_replica_and_fresh_true_reads_the_primary(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    store.append("before", [Happened(1)], facta.NO_STREAM)
    with replay_paused(primary, standby):
        store.append("during", [Happened(2)], facta.NO_STREAM)
        assert [e.stream_id for e in store.read_stream("during")] == []  # the replica's
        assert [e.data for e in store.read_stream("during", fresh=True)] == [Happened(2)]
        assert [e.stream_id for e in store.read_all()] == ["before"]
        assert store.stream_version("during") == 1  # a writer's question: the primary's
    assert [e.data for e in store.read_stream("during", fresh=True)] == [Happened(2)]


def test_an_append_returns_its_commit_lsn_only_where_the_store_has_replicas(
    store: facta.EventStore, primary: Cluster, schema: str
) -> None:
    result = store.append("s", [Happened(1)], facta.NO_STREAM)
    assert result.lsn is not None
    assert result.lsn > 0
    (many,) = store.append_many([StreamAppend("t", [Happened(2)], facta.NO_STREAM)])
    assert many.lsn is not None
    assert many.lsn >= result.lsn
    with facta.connect(primary.url(schema)) as plain:
        assert plain.append("u", [Happened(3)], facta.NO_STREAM).lsn is None


def test_a_read_fresh_as_an_append_waits_for_the_replica_to_replay_it(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    with replay_paused(primary, standby):
        result = store.append("s", [Happened(1)], facta.NO_STREAM)
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(lambda: list(store.read_stream("s", fresh=result)))
            time.sleep(0.2)
            assert not reading.done()  # it waits for the paused replica
            standby.execute("SELECT pg_wal_replay_resume()")
            assert [e.data for e in reading.result(PATIENCE)] == [Happened(1)]


def test_a_fresh_read_the_replica_cannot_serve_in_time_raises_replica_behind(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    url = primary.url(schema)
    with facta.connect(url, replicas=[standby.url()], replica_timeout=0.1) as store:
        store.stream_version("migrate-now")
        with replay_paused(primary, standby):
            result = store.append("s", [Happened(1)], facta.NO_STREAM)
            assert result.lsn is not None
            with pytest.raises(ReplicaBehind) as raised:
                list(store.read_stream("s", fresh=result))
    error = raised.value
    assert error.replica == f"postgresql://127.0.0.1:{standby.port}/postgres?schema={schema}"
    assert error.lsn == result.lsn
    assert error.replayed is not None
    assert error.replayed < error.lsn
    assert facta.errors.format_lsn(result.lsn) in str(error)
    assert facta.errors.format_lsn(error.replayed) in str(error)


def test_replica_fallback_reads_the_primary_when_the_replica_is_too_far_behind(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    options: dict[str, Any] = {"replica_timeout": 0.05, "replica_fallback": True}
    with facta.connect(primary.url(schema), replicas=[standby.url()], **options) as store:
        store.stream_version("migrate-now")
        with replay_paused(primary, standby):
            result = store.append("s", [Happened(1)], facta.NO_STREAM)
            assert [e.data for e in store.read_stream("s", fresh=result)] == [Happened(1)]


def test_a_result_without_an_lsn_waits_for_the_primary_wal_as_the_read_starts(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    with replay_paused(primary, standby):
        result = store.append("s", [Happened(1)], facta.NO_STREAM)
        unknown = result._replace(lsn=None)  # as a caller's transaction returns it
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(lambda: list(store.read_stream("s", fresh=unknown)))
            time.sleep(0.2)
            assert not reading.done()
            standby.execute("SELECT pg_wal_replay_resume()")
            assert len(reading.result(PATIENCE)) == 1


def test_commit_lsn_false_keeps_appends_to_one_round_trip_and_fresh_reads_still_see_them(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    url = primary.url(schema)
    with facta.connect(url, replicas=[standby.url()], commit_lsn=False) as store:
        result = store.append("s", [Happened(1)], facta.NO_STREAM)
        assert result.lsn is None
        assert [e.data for e in store.read_stream("s", fresh=result)] == [Happened(1)]


def test_a_replica_without_the_store_yet_says_so(primary: Cluster, standby: Cluster) -> None:
    schema = f"replicas_{uuid.uuid4().hex[:10]}"
    url = primary.url(schema)
    with facta.connect(url, replicas=[standby.url()]) as store, replay_paused(primary, standby):
        store.stream_version("creates-it")
        with pytest.raises(facta.StoreError, match="holds no facta store in schema"):
            list(store.read_stream("s"))


def test_fresh_takes_only_booleans_results_and_wal_positions(store: facta.EventStore) -> None:
    with pytest.raises(TypeError, match="fresh="):
        list(store.read_stream("s", fresh="yes"))  # type: ignore[arg-type]


def test_replica_options_are_checked(primary: Cluster) -> None:
    with pytest.raises(ConfigurationError, match="replicas takes a list"):
        facta.connect(primary.url("x"), replicas=primary.url())
    with pytest.raises(ConfigurationError, match="replica_timeout"):
        facta.connect(primary.url("x"), replicas=[primary.url()], replica_timeout=-1)
    with pytest.raises(ConfigurationError, match="primary's schema"):
        facta.connect(primary.url("x"), replicas=[primary.url("y")])


# -- repositories --------------------------------------------------------------------------


def test_update_after_a_stale_replica_load_retries_from_the_primary(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    repo = facta.Repository(store, Position)
    created = Position("p")
    created.move(1)
    repo.save(created)
    runs: list[int] = []

    def move(position: Position) -> None:
        runs.append(position.version)
        position.move(10)

    with replay_paused(primary, standby):
        newer = repo.load("p", fresh=True)
        newer.move(100)
        repo.save(newer)  # the replica still has version 1
        assert repo.load("p").version == 1
        updated = repo.update("p", move)
    assert runs == [1, 2]  # stale first, then fresh from the primary: no loop
    assert (updated.version, updated.at) == (3, 111)


def test_update_of_an_aggregate_the_replica_has_not_got_yet_loads_it_from_the_primary(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    repo = facta.Repository(store, Position)
    with replay_paused(primary, standby):
        created = Position("p")
        created.move(1)
        result = repo.save(created)
        with pytest.raises(facta.AggregateNotFound):
            repo.load("p")
        assert repo.update("p", lambda p: p.move(2)).at == 3
    assert result is not None
    assert repo.load("p", fresh=True).version == 2


def test_a_load_fresh_as_a_save_sees_that_save(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    repo = facta.Repository(store, Position)
    position = Position("p")
    position.move(5)
    result = repo.save(position)
    assert result is not None
    assert repo.load("p", fresh=result).at == 5


async def test_the_async_store_reads_fresh_from_the_replica(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    async with facta.connect_async(
        primary.url(schema), replicas=[standby.url()], replica_timeout=PATIENCE
    ) as store:
        result = await store.append("s", [Happened(1)], facta.NO_STREAM)
        assert result.lsn is not None
        assert [e.data async for e in store.read_stream("s", fresh=result)] == [Happened(1)]
        repo = facta.AsyncRepository(store, Position)
        position = Position("p")
        position.move(3)
        saved = await repo.save(position)
        assert saved is not None
        assert (await repo.load("p", fresh=saved)).at == 3
        (lag,) = await store.recorder.replica_lag()  # type: ignore[attr-defined]
        assert lag.replayed_lsn is not None


# -- the global log on the standby ---------------------------------------------------------


def test_a_standby_snapshot_lists_no_running_transaction_but_the_horizon_stays_below_it(
    store: facta.EventStore, primary: Cluster, standby: Cluster, schema: str
) -> None:
    """The trap: on a standby ``pg_current_snapshot()`` has an empty xip list."""
    with psycopg.connect(primary.conninfo()) as held:
        store.append("held", [Happened(1)], facta.ANY, connection=held)
        ((xid,),) = held.execute("SELECT pg_current_xact_id()::text::bigint").fetchall()
        store.append("later", [Happened(2)], facta.ANY)
        standby.wait_for_replay(primary)
        ((snapshot, horizon),) = standby.execute(
            f"SELECT pg_current_snapshot()::text, ({Queries.render(schema).horizon})"
        )
        _xmin, xmax, xip = str(snapshot).split(":")
        assert xip == ""
        assert int(xmax) > xid
        assert int(str(horizon)) <= xid
        held.rollback()


def test_the_replica_reader_does_not_pass_a_held_primary_transaction_until_it_commits(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    start = caught_up(store, primary, standby)
    begin = [e.checkpoint for e in start.read_all()]
    after = begin[-1] if begin else Checkpoint()
    with psycopg.connect(primary.conninfo()) as held:
        store.append("held", [Happened(1)], facta.ANY, connection=held)
        later = [store.append(f"later-{n}", [Happened(n)], facta.ANY) for n in range(5)]
        standby.wait_for_replay(primary)
        assert list(store.read_stream("later-4", fresh=later[-1]))  # the replica has them
        while_held = [e.stream_id for e in store.read_all(after)]
        lag = pg(store).reading(None, primary=False).reader_lag()
        held.commit()
    assert while_held == []
    assert lag.held_back >= 5
    caught_up(store, primary, standby)
    events = list(store.read_all(after))
    assert [e.stream_id for e in events] == ["held", *(f"later-{n}" for n in range(5))]


def test_a_primary_transaction_with_an_id_but_no_wal_yet_still_holds_replica_readers_back(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    """The standby learns of an id from the WAL of a younger one, and counts it as running."""
    start = caught_up(store, primary, standby)
    begin = [e.checkpoint for e in start.read_all()]
    after = begin[-1] if begin else Checkpoint()
    with psycopg.connect(primary.conninfo()) as held:
        ((xid,),) = held.execute("SELECT pg_current_xact_id()::text::bigint").fetchall()
        later = store.append("later", [Happened(2)], facta.ANY)  # a younger id, in the WAL
        assert list(store.read_stream("later", fresh=later))
        while_held = [e.stream_id for e in store.read_all(after)]
        store.append("held", [Happened(1)], facta.ANY, connection=held)  # now it writes
        held.commit()
    assert while_held == []
    caught_up(store, primary, standby)
    events = list(store.read_all(after))
    assert (events[0].stream_id, events[0].transaction_id) == ("held", xid)
    assert [e.stream_id for e in events] == ["held", "later"]


def test_a_reader_on_the_replica_sees_every_event_of_eight_writers_once_and_in_order(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    expected, seen = tail_eight_writers(store)
    caught_up(store, primary, standby)
    seen += store.read_all(seen[-1].checkpoint if seen else Checkpoint())
    ids = [e.event_id for e in seen]
    counts = {
        "skipped": len(expected - set(ids)),
        "repeated": len(ids) - len(set(ids)),
        "out of stream order": out_of_order(seen),
    }
    assert counts == {"skipped": 0, "repeated": 0, "out of stream order": 0}, counts
    assert len(expected) > 500  # the writers did write
    assert [e.checkpoint for e in seen] == sorted(e.checkpoint for e in seen)
    for stream in HOT:
        version = store.stream_version(stream)
        assert [e.version for e in seen if e.stream_id == stream] == list(range(1, version + 1))


def test_a_subscription_follows_the_replica_across_many_writes(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    total = 2000
    received: list[RecordedEvent] = []
    with store.subscribe(batch_size=50, poll_interval=0.05) as subscription:

        def write() -> None:
            for n in range(0, total, 20):
                store.append(f"s-{n % 7}", [Happened(n + k) for k in range(20)], facta.ANY)

        thread = threading.Thread(target=write)
        thread.start()
        deadline = time.monotonic() + PATIENCE
        for event in subscription:
            received.append(event)
            if len(received) == total or time.monotonic() > deadline:
                break
        thread.join()
    assert sorted(e.data.n for e in received) == list(range(total))
    assert [e.checkpoint for e in received] == sorted(e.checkpoint for e in received)


class Counted(Projection[psycopg.Connection[Any]]):
    name = "counted"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS counted (stream_id text PRIMARY KEY, n bigint)")

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM counted")

    @handles(Happened)
    def count(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "INSERT INTO counted VALUES (%s, 1) ON CONFLICT (stream_id)"
            " DO UPDATE SET n = counted.n + 1",
            (event.stream_id,),
        )


def test_a_projection_runner_reads_the_replica_and_writes_its_model_on_the_primary(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    for n in range(30):
        store.append(f"s-{n % 3}", [Happened(n)], facta.ANY)
    with replay_paused(primary, standby):
        store.append("late", [Happened(99)], facta.ANY)
        with ProjectionRunner(store, Counted()) as runner:
            runner.catch_up()
        with pg(store).transaction() as conn:
            counts = dict(conn.execute("SELECT stream_id, n FROM counted").fetchall())
        assert counts == {"s-0": 10, "s-1": 10, "s-2": 10}  # what the replica had
    caught_up(store, primary, standby)
    with ProjectionRunner(store, Counted()) as runner:
        runner.catch_up()
    with pg(store).transaction() as conn:
        counts = dict(conn.execute("SELECT stream_id, n FROM counted").fetchall())
    assert counts == {"s-0": 10, "s-1": 10, "s-2": 10, "late": 1}


def test_a_read_only_store_opened_on_the_standby_itself_reads_the_log(
    store: facta.EventStore, primary: Cluster, standby: Cluster, schema: str
) -> None:
    store.append("s", [Happened(1), Happened(2)], facta.NO_STREAM)
    caught_up(store, primary, standby)
    with facta.connect(standby.url(schema), read_only=True) as on_standby:
        assert [e.data for e in on_standby.read_all()] == [Happened(1), Happened(2)]
        lag = on_standby.recorder.reader_lag()  # type: ignore[attr-defined]
        assert lag.held_back == 0
        with on_standby.subscribe(poll_interval=0.05) as subscription:  # it polls: no LISTEN
            store.append("s", [Happened(3)], facta.ANY)
            following = iter(subscription)
            received = [next(following).data for _ in range(3)]
        assert received == [Happened(1), Happened(2), Happened(3)]


# -- replica lag ---------------------------------------------------------------------------


def test_replica_lag_says_how_far_behind_the_replica_is(
    store: facta.EventStore, primary: Cluster, standby: Cluster
) -> None:
    with replay_paused(primary, standby):
        store.append("s", [Happened(n) for n in range(100)], facta.NO_STREAM)
        (behind,) = pg(store).replica_lag()
    assert behind.behind_bytes > 0
    assert f"replica postgresql://127.0.0.1:{standby.port}/" in str(behind)
    assert "bytes of WAL" in str(behind)
    assert "behind the primary" in str(behind)
    standby.wait_for_replay(primary)
    deadline = time.monotonic() + PATIENCE
    while (now := pg(store).replica_lag()[0]).behind_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert now.behind_bytes == 0
    assert "has replayed everything" in str(now)


# -- command line --------------------------------------------------------------------------


def test_reading_commands_take_replica_urls_and_projections_list_shows_their_lag(
    store: facta.EventStore, primary: Cluster, standby: Cluster, schema: str
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with ProjectionRunner(store, Counted()) as runner:
        runner.catch_up()
    caught_up(store, primary, standby)
    replica = ["--replica", standby.url()]
    shown = CliRunner().invoke(main, ["log", primary.url(schema), *replica])
    assert shown.exit_code == 0, shown.output
    assert "s" in shown.output
    listed = CliRunner().invoke(main, ["projections", "list", primary.url(schema), *replica])
    assert listed.exit_code == 0, listed.output
    assert f"note: replica postgresql://127.0.0.1:{standby.port}/" in listed.output


def test_replica_urls_are_refused_for_a_store_that_reads_no_replicas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url) as store:
        store.append("s", [Happened(1)], facta.NO_STREAM)
    refused = CliRunner().invoke(main, ["log", url, "--replica", "postgresql://x/y"])
    assert refused.exit_code == 2
    assert "--replica is for PostgreSQL stores" in refused.output


def test_with_two_replicas_a_fresh_read_goes_to_the_one_that_has_the_commit(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    with primary.replica() as second:
        replicas = [standby.url(), second.url()]
        url = primary.url(schema)
        with facta.connect(url, replicas=replicas, replica_timeout=PATIENCE) as store:
            store.stream_version("migrate-now")
            second.wait_for_replay(primary)
            with replay_paused(primary, standby):
                result = store.append("s", [Happened(1)], facta.NO_STREAM)
                for _ in range(4):  # whichever one's turn it is, the fresh one answers
                    assert [e.data for e in store.read_stream("s", fresh=result)] == [Happened(1)]
                seen = {len(list(store.read_stream("s"))) for _ in range(4)}
                assert seen == {0, 1}  # plain reads take turns: the paused one has nothing
                lags = pg(store).replica_lag()
            assert [lag.replica.split("/")[2] for lag in lags] == [
                f"127.0.0.1:{standby.port}",
                f"127.0.0.1:{second.port}",
            ]


class Collected(Broker):
    """Acknowledges every message and keeps it."""

    def __init__(self) -> None:
        self.received: list[Message] = []

    async def open(self) -> None:
        pass

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        self.received.extend(messages)
        return len(messages)

    async def close(self) -> None:
        pass


async def test_a_relay_reads_the_replica_and_keeps_its_checkpoint_on_the_primary(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    url = primary.url(schema)
    async with facta.connect_async(url, replicas=[standby.url()]) as store:
        await store.append("s", [Happened(1), Happened(2)], facta.NO_STREAM)
        standby.wait_for_replay(primary)
        with replay_paused(primary, standby):
            await store.append("t", [Happened(3)], facta.NO_STREAM)
            broker = Collected()
            async with Relay(store, broker, name="out") as relay:
                assert await relay.catch_up() == 2  # what the replica has
        async with Relay(store, broker, name="out") as relay:  # its checkpoint, from the primary
            deadline = time.monotonic() + PATIENCE
            while len(broker.received) < 3 and time.monotonic() < deadline:
                await relay.catch_up()
                await asyncio.sleep(0.01)
    streams = [m.headers["Facta-Stream"] for m in broker.received]
    assert streams == ["s", "s", "t"]


async def test_async_update_after_a_stale_replica_load_retries_from_the_primary(
    primary: Cluster, standby: Cluster, schema: str
) -> None:
    async with facta.connect_async(primary.url(schema), replicas=[standby.url()]) as store:
        repo = facta.AsyncRepository(store, Position)
        created = Position("p")
        created.move(1)
        await repo.save(created)
        runs: list[int] = []

        async def move(position: Position) -> None:
            runs.append(position.version)
            position.move(10)

        with replay_paused(primary, standby):
            newer = await repo.load("p", fresh=True)
            newer.move(100)
            await repo.save(newer)
            updated = await repo.update("p", move)
    assert runs == [1, 2]
    assert (updated.version, updated.at) == (3, 111)
