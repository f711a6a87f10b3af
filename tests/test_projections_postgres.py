"""Projections on PostgreSQL: writers that commit out of order never make a runner skip."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import facta
import facta.projections.runner
from facta.backends.postgres.recorder import PostgresRecorder
from facta.cli import main
from facta.errors import NotAFactaStore, ProjectionLocked, SchemaVersionError, StoreError
from facta.projections import (
    AsyncProjection,
    AsyncProjectionRunner,
    OnError,
    Projection,
    ProjectionError,
    ProjectionRunner,
    add_inline,
    add_inline_async,
    handles,
)

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds a read waits for other sessions' transactions to end
HELD = 4242  # the advisory lock a late writer's trigger waits for


@facta.event("test.projections_postgres.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@facta.event("test.projections_postgres.Late")
@dataclass(frozen=True)
class Late:
    amount: int


class Totals(Projection[psycopg.Connection[Any]]):
    name = "totals"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS totals (stream_id text PRIMARY KEY, n bigint)")
        conn.execute("CREATE TABLE IF NOT EXISTS applied (position bigint NOT NULL)")

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM totals")
        conn.execute("DELETE FROM applied")

    @handles(Deposited, Late)
    def counted(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "INSERT INTO totals VALUES (%s, %s) ON CONFLICT (stream_id)"
            " DO UPDATE SET n = totals.n + excluded.n",
            (event.stream_id, event.data.amount),
        )
        conn.execute("INSERT INTO applied VALUES (%s)", (event.position,))


@pytest.fixture
def url(postgres_url: str, pg_schema: str) -> str:
    return f"{postgres_url}?schema={pg_schema}"


@pytest.fixture
def store(url: str) -> Iterator[facta.EventStore]:
    with facta.connect(url, pool_size=6) as opened:
        opened.stream_version("migrate-now")
        yield opened


def pg(store: facta.EventStore) -> PostgresRecorder:
    assert isinstance(store.recorder, PostgresRecorder)
    return store.recorder


def run_sql(store: facta.EventStore, statement: str) -> list[tuple[Any, ...]]:
    """Run SQL in the store's schema (``search_path``), in one transaction; its rows."""
    with pg(store).transaction() as conn:
        cur = conn.execute(statement.encode())
        return cur.fetchall() if cur.description else []


def applied(store: facta.EventStore) -> list[int]:
    return [row[0] for row in run_sql(store, "SELECT position FROM applied ORDER BY position")]


def settle(store: facta.EventStore) -> None:
    """Wait until readers see every committed event (other sessions may hold them back)."""
    assert pg(store).wait_until_readable(PATIENCE), held_back(store)


def held_back(store: facta.EventStore) -> str:
    """Why read_all may not see everything yet: an old open transaction anywhere on the server."""
    return f"readers are held back: {pg(store).reader_lag()}"


def positions(store: facta.EventStore) -> list[int]:
    settle(store)
    return sorted(event.position for event in store.read_all())


def test_a_runner_never_skips_an_event_whose_writer_commits_late(
    store: facta.EventStore, postgres_url: str
) -> None:
    # A trigger makes the writer of a Late event wait, after its insert, for a lock we hold.
    run_sql(
        store,
        f"""CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM set_config('lock_timeout', '60s', true);  -- held longer than appends wait
            PERFORM pg_advisory_xact_lock_shared({HELD});
            RETURN NEW;
        END $$;
        CREATE TRIGGER hold AFTER INSERT ON facta_events FOR EACH ROW
        WHEN (NEW.type = 'test.projections_postgres.Late') EXECUTE FUNCTION hold()""",
    )
    store.append("early", [Deposited(1)], facta.ANY)
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (HELD,))
        late = threading.Thread(target=store.append, args=("late", [Late(10)], facta.ANY))
        late.start()
        for _ in range(3000):  # until the late writer waits, its position taken
            if run_sql(store, "SELECT 1 FROM pg_locks WHERE NOT granted AND objid = 4242"):
                break
            threading.Event().wait(0.01)
        store.append("after", [Deposited(100), Deposited(1000)], facta.ANY)  # commit before it
        with ProjectionRunner(store, Totals()) as runner:
            runner.catch_up()
            deadline = time.monotonic() + PATIENCE
            while not applied(store) and time.monotonic() < deadline:
                time.sleep(0.01)  # other sessions may hold even the early event back a while
                runner.catch_up()
            # only what is below the late writer's transaction
            assert len(applied(store)) == 1, held_back(store)
        holder.execute("SELECT pg_advisory_unlock(%s)", (HELD,))
        late.join()
    settle(store)
    with ProjectionRunner(store, Totals()) as runner:
        runner.catch_up()
    assert applied(store) == positions(store), held_back(store)
    assert dict(run_sql(store, "SELECT * FROM totals")) == {"early": 1, "late": 10, "after": 1100}


def test_concurrent_writers_committing_out_of_order_leave_no_gap_in_a_running_projection(
    store: facta.EventStore,
) -> None:
    # Every writer sleeps a random moment after its insert: commits come out of order.
    run_sql(
        store,
        """CREATE FUNCTION dawdle() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(random() * 0.005); RETURN NEW; END $$;
        CREATE TRIGGER dawdle AFTER INSERT ON facta_events FOR EACH ROW
        EXECUTE FUNCTION dawdle()""",
    )

    def write(writer: int) -> None:
        rng = random.Random(writer)
        for i in range(40):
            events = [Deposited(1) for _ in range(rng.randint(1, 3))]
            store.append(f"writer-{writer}-{i % 4}", events, facta.ANY)

    with ProjectionRunner(store, Totals(), batch_size=5, poll_interval=0.01) as runner:
        follower = threading.Thread(target=runner.run)
        follower.start()
        writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        for _ in range(3000):  # the writers are done: soon nothing is held back
            if not runner.lag():
                break
            threading.Event().wait(0.01)
        runner.stop()
        follower.join()
    assert applied(store) == positions(store), held_back(store)


def test_read_models_live_in_the_stores_schema(store: facta.EventStore) -> None:
    store.append("a", [Deposited(5)], facta.ANY)
    with ProjectionRunner(store, Totals()) as runner:
        runner.catch_up()
    with pg(store).connection() as conn:
        found = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'totals'"
            " AND table_schema = %s",
            (pg(store).schema,),
        ).fetchall()
    assert found == [(pg(store).schema,)]


LEDGER = "CREATE TABLE IF NOT EXISTS ledger (stream_id text, amount bigint, position bigint)"
RECORD = "INSERT INTO ledger VALUES (%s, %s, %s)"


class Ledger(Projection[psycopg.Connection[Any]]):
    """An inline projection: one row per deposit, in the store's schema (search_path)."""

    name = "ledger"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(LEDGER)

    @handles(Deposited)
    def deposited(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        if event.data.amount < 0:
            raise ValueError("a deposit is never negative")
        conn.execute(RECORD, (event.stream_id, event.data.amount, event.position))


class AsyncLedger(AsyncProjection[psycopg.AsyncConnection[Any]]):
    name = "ledger"

    async def setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(LEDGER)

    @handles(Deposited)
    async def deposited(
        self, event: facta.RecordedEvent, conn: psycopg.AsyncConnection[Any]
    ) -> None:
        await conn.execute(RECORD, (event.stream_id, event.data.amount, event.position))


def test_an_inline_projection_writes_beside_the_events_in_the_appends_transaction(
    store: facta.EventStore,
) -> None:
    add_inline(store, Ledger())
    store.append_many(
        [
            facta.StreamAppend("b", [Deposited(2)], facta.ANY),
            facta.StreamAppend("a", [Deposited(1)], facta.ANY),
        ]
    )
    rows = run_sql(store, "SELECT stream_id, amount, position FROM ledger ORDER BY position")
    assert rows == [("b", 2, 1), ("a", 1, 2)]
    with pytest.raises(ProjectionError, match="never negative"):
        store.append("a", [Deposited(5), Deposited(-1)], facta.ANY)
    assert store.stream_version("a") == 1
    assert run_sql(store, "SELECT count(*) FROM ledger") == [(2,)]


async def test_an_async_inline_projection_is_awaited_in_the_appends_transaction(url: str) -> None:
    async with facta.connect_async(url) as store:
        await add_inline_async(store, AsyncLedger())
        await store.append("a", [Deposited(1), Deposited(2)], facta.ANY)
        async with store.recorder.transaction() as conn:
            cur = await conn.execute("SELECT stream_id, amount FROM ledger ORDER BY position")
            rows = await cur.fetchall()
    assert rows == [("a", 1), ("a", 2)]


def test_the_projections_listing_notes_who_holds_readers_back(
    store: facta.EventStore, url: str, postgres_url: str
) -> None:
    with ProjectionRunner(store, Totals()) as runner:
        runner.catch_up()
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT pg_current_xact_id()")  # an open transaction of this database
        store.append("s", [Deposited(1)], facta.ANY)
        listing = CliRunner().invoke(main, ["projections", url])
    assert listing.exit_code == 0, listing.output
    table, note = listing.output.splitlines()[1:-1], listing.output.splitlines()[-1]
    assert [line.split()[0] for line in table] == ["totals"]
    assert note.startswith("note: ")
    assert "committed event is not readable yet: the transaction of server process" in note


def test_the_projections_listing_has_no_note_when_readers_are_not_held_back(
    store: facta.EventStore, url: str
) -> None:
    with ProjectionRunner(store, Totals()) as runner:
        runner.catch_up()
    store.append("s", [Deposited(1)], facta.ANY)
    settle(store)  # from here on, only this store's events count, and all are readable
    listing = CliRunner().invoke(main, ["projections", url])
    assert listing.exit_code == 0, listing.output
    assert "note:" not in listing.output


# -- a running projection meets a failing store ---------------------------------------------------


def failing_reads(
    monkeypatch: pytest.MonkeyPatch, store: facta.EventStore, *failures: Exception
) -> None:
    """Make the store's next ``read_all`` calls raise ``failures``, one each, in order."""
    real, pending = store.read_all, list(failures)

    def read_all(*args: Any, **kwargs: Any) -> Iterator[facta.RecordedEvent]:
        if pending:
            raise pending.pop(0)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "read_all", read_all)


@contextmanager
def running_in_a_thread(runner: ProjectionRunner[Any]) -> Iterator[Future[None]]:
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(runner.run)
        try:
            yield run
        finally:
            runner.stop()
            with suppress(Exception):  # the test looks at how it ended
                run.result(timeout=PATIENCE)


def test_a_running_projection_retries_a_failing_store_backing_off_and_logging_each_retry(
    store: facta.EventStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="facta.projections")
    store.append("a", [Deposited(1)], facta.ANY)
    settle(store)
    failing_reads(monkeypatch, store, *[StoreError(f"lost connection {n}") for n in range(4)])
    with (
        ProjectionRunner(store, Totals(), poll_interval=0.05) as runner,
        running_in_a_thread(runner) as run,
    ):
        deadline = time.monotonic() + PATIENCE
        while applied(store) != [1] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not run.done()
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert [message.split("(failure ")[1] for message in retries] == ["1)", "2)", "3)", "4)"]
    assert retries[0].startswith("projection 'totals': the store failed (lost connection 0);")
    delays = [float(message.split("retrying in ")[1].split(" s")[0]) for message in retries]
    assert 0.05 <= delays[0] <= 0.1  # then doubling, each drawn from its upper half
    assert 0.4 <= delays[3] <= 0.8
    assert applied(store) == [1]


@pytest.mark.parametrize(
    "permanent",
    [SchemaVersionError("the schema is at version 9"), NotAFactaStore("no store here")],
)
def test_a_running_projection_stops_on_a_failure_retrying_cannot_mend(
    store: facta.EventStore, monkeypatch: pytest.MonkeyPatch, permanent: StoreError
) -> None:
    failing_reads(monkeypatch, store, permanent)
    with ProjectionRunner(store, Totals()) as runner, pytest.raises(type(permanent)):
        runner.run()


def test_a_running_projection_stops_when_another_runner_took_it_over_while_it_waited(
    store: facta.EventStore, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facta.projections.runner, "_RETRY_FIRST", 2.0)
    failing_reads(monkeypatch, store, StoreError("lost connection"))
    with (
        facta.connect(url) as other,
        ProjectionRunner(store, Totals()) as runner,
        running_in_a_thread(runner) as run,
    ):
        deadline = time.monotonic() + PATIENCE
        while True:  # the failing runner lets go of the projection while it waits
            try:
                taker = ProjectionRunner(other, Totals()).__enter__()
                break
            except ProjectionLocked:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        try:
            with pytest.raises(ProjectionLocked):
                run.result(timeout=PATIENCE)
        finally:
            taker.__exit__(None, None, None)


CHECKED = (
    "CREATE TABLE IF NOT EXISTS checked"
    " (stream_id text, amount bigint CHECK (amount >= 0), position bigint)"
)


class Pipelined(Projection[psycopg.Connection[Any]]):
    """Writes each event's amount into a table that refuses negative ones, pipelined."""

    name = "pipelined"
    pipelined = True

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(CHECKED)

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM checked")

    @handles(Deposited)
    def deposited(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "INSERT INTO checked VALUES (%s, %s, %s)",
            (event.stream_id, event.data.amount, event.position),
        )


class AsyncPipelined(AsyncProjection[psycopg.AsyncConnection[Any]]):
    name = "pipelined"
    pipelined = True

    async def setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(CHECKED)

    @handles(Deposited)
    async def deposited(
        self, event: facta.RecordedEvent, conn: psycopg.AsyncConnection[Any]
    ) -> None:
        await conn.execute(
            "INSERT INTO checked VALUES (%s, %s, %s)",
            (event.stream_id, event.data.amount, event.position),
        )


def checked(store: facta.EventStore) -> list[tuple[str, int]]:
    return [
        (row[0], row[1])
        for row in run_sql(store, "SELECT stream_id, amount FROM checked ORDER BY position")
    ]


def test_a_pipelined_projection_applies_each_batch_and_moves_its_checkpoint(
    store: facta.EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="facta.projections")
    for n in range(7):
        store.append(f"s{n % 3}", [Deposited(n)], facta.ANY)
    settle(store)
    with ProjectionRunner(store, Pipelined(), batch_size=3) as runner:
        assert runner.catch_up() == 7
        last = runner.checkpoint
    assert checked(store) == [(f"s{n % 3}", n) for n in range(7)]
    assert last == list(store.read_all())[-1].checkpoint
    with ProjectionRunner(store, Pipelined()) as runner:
        assert runner.checkpoint == last  # stored with the batches
        assert runner.catch_up() == 0
    assert not [r for r in caplog.records if "pipelined batch failed" in r.getMessage()]


def test_a_statement_failing_in_a_pipelined_batch_is_pinned_on_its_event(
    store: facta.EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="facta.projections")
    for amount in (1, 2, -3, 4):
        store.append("a", [Deposited(amount)], facta.ANY)
    settle(store)
    events = list(store.read_all())
    with ProjectionRunner(store, Pipelined()) as runner, pytest.raises(ProjectionError) as failure:
        runner.catch_up()
    assert failure.value.version == 3
    assert "violates check constraint" in str(failure.value)
    assert runner.checkpoint == events[1].checkpoint  # the events before it were committed
    assert checked(store) == [("a", 1), ("a", 2)]
    fallbacks = [r for r in caplog.records if "pipelined batch failed" in r.getMessage()]
    assert fallbacks  # found at the batch's end, then pinned one statement at a time


def test_a_pipelined_batch_parks_a_failing_statements_event_and_goes_on(
    store: facta.EventStore,
) -> None:
    for amount in (1, -2, 3):
        store.append("a", [Deposited(amount)], facta.ANY)
    settle(store)
    with ProjectionRunner(store, Pipelined(), on_error=OnError.DEAD_LETTER) as runner:
        assert runner.catch_up() == 3
        parked = runner.dead_letters()
    assert [letter.version for letter in parked] == [2]
    assert checked(store) == [("a", 1), ("a", 3)]


async def test_an_async_pipelined_projection_pins_a_failing_statement_on_its_event(
    url: str,
) -> None:
    async with facta.connect_async(url) as store:
        for amount in (5, -1, 6):
            await store.append("b", [Deposited(amount)], facta.ANY)
        assert await store.recorder.wait_until_readable(PATIENCE)  # type: ignore[attr-defined]
        runner = AsyncProjectionRunner(store, AsyncPipelined())
        async with runner:
            with pytest.raises(ProjectionError) as failure:
                await runner.catch_up()
            assert failure.value.version == 2
            async with store.recorder.transaction() as conn:
                cur = await conn.execute("SELECT amount FROM checked ORDER BY position")
                assert [row[0] for row in await cur.fetchall()] == [5]
