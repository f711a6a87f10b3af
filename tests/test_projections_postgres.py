"""Projections on PostgreSQL: writers that commit out of order never make a runner skip."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

import facta
from facta.backends.postgres import PostgresEventStore
from facta.projections import Projection, ProjectionRunner, handles

pytestmark = pytest.mark.postgres

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
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
def store(pg_schema: str) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(POSTGRES_URL, schema=pg_schema, pool_size=6) as opened:
        opened.stream_version("migrate-now")
        yield opened


def run_sql(store: PostgresEventStore, statement: str) -> list[tuple[Any, ...]]:
    with store.connection() as conn, conn.transaction():
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(store.schema)))
        cur = conn.execute(statement.encode())
        return cur.fetchall() if cur.description else []


def applied(store: PostgresEventStore) -> list[int]:
    return [row[0] for row in run_sql(store, "SELECT position FROM applied ORDER BY position")]


def settle(store: PostgresEventStore) -> None:
    """Wait until readers see every committed event (other sessions may hold them back)."""
    for _ in range(3000):
        if not store.reader_lag().held_back:
            return
        threading.Event().wait(0.01)


def held_back(store: PostgresEventStore) -> str:
    """Why read_all may not see everything yet: an old open transaction anywhere on the server."""
    return f"readers are held back: {store.reader_lag()}"


def positions(store: PostgresEventStore) -> list[int]:
    return sorted(event.position for event in store.read_all())


def test_a_runner_never_skips_an_event_whose_writer_commits_late(
    store: PostgresEventStore,
) -> None:
    # A trigger makes the writer of a Late event wait, after its insert, for a lock we hold.
    run_sql(
        store,
        f"""CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock_shared({HELD}); RETURN NEW; END $$;
        CREATE TRIGGER hold AFTER INSERT ON events FOR EACH ROW
        WHEN (NEW.type = 'test.projections_postgres.Late') EXECUTE FUNCTION hold()""",
    )
    store.append("early", [Deposited(1)])
    with psycopg.connect(POSTGRES_URL, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (HELD,))
        late = threading.Thread(target=store.append, args=("late", [Late(10)]))
        late.start()
        for _ in range(3000):  # until the late writer waits, its position taken
            if run_sql(store, "SELECT 1 FROM pg_locks WHERE NOT granted AND objid = 4242"):
                break
            threading.Event().wait(0.01)
        store.append("after", [Deposited(100), Deposited(1000)])  # commit before it
        with ProjectionRunner(store, Totals()) as runner:
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
    store: PostgresEventStore,
) -> None:
    # Every writer sleeps a random moment after its insert: commits come out of order.
    run_sql(
        store,
        """CREATE FUNCTION dawdle() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(random() * 0.005); RETURN NEW; END $$;
        CREATE TRIGGER dawdle AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION dawdle()""",
    )

    def write(writer: int) -> None:
        rng = random.Random(writer)
        for i in range(40):
            events = [Deposited(1) for _ in range(rng.randint(1, 3))]
            store.append(f"writer-{writer}-{i % 4}", events)

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


def test_read_models_live_in_the_stores_schema(store: PostgresEventStore) -> None:
    store.append("a", [Deposited(5)])
    with ProjectionRunner(store, Totals()) as runner:
        runner.catch_up()
    with store.connection() as conn:
        found = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'totals'"
            " AND table_schema = %s",
            (store.schema,),
        ).fetchall()
    assert found == [(store.schema,)]
