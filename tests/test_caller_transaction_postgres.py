"""Appending in the caller's transaction on PostgreSQL: each stream's versions keep the global
log's order, isolation levels, the connections refused, and what facta leaves of the caller's
session as it was.

An append takes its streams' locks before its transaction has an id, so whoever appends to a
stream later gets a younger id (docs/design.md, "Global order"). A caller's transaction may
have its id already (it wrote its own rows first): the append is then refused if a younger
transaction has written to the stream since.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

import facta
from facta.projections import Projection, handles
from facta.projections.inline import add_inline
from facta.testing.events import Happened

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds to wait for another session on a shared server


@pytest.fixture
def store(postgres_url: str, pg_schema: str) -> Iterator[facta.EventStore]:
    with facta.connect(f"{postgres_url}?schema={pg_schema}", pool_size=4) as opened:
        opened.stream_version("migrate-now")
        with psycopg.connect(postgres_url) as conn:
            conn.execute(f'CREATE TABLE "{pg_schema}".notes (id int PRIMARY KEY, text text)')
            conn.execute(f"INSERT INTO \"{pg_schema}\".notes VALUES (0, 'shared')")
        yield opened


def note(conn: psycopg.Connection[Any], schema: str, id: int) -> None:
    """The application's own write in its transaction (which then has an id)."""
    conn.execute(f'INSERT INTO "{schema}".notes VALUES (%s, %s)', (id, f"note {id}"))


def notes(postgres_url: str, schema: str) -> list[int]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(f'SELECT id FROM "{schema}".notes WHERE id > 0 ORDER BY id')
        return [int(row[0]) for row in rows]


def versions(store: facta.EventStore, stream_id: str) -> list[int]:
    """The stream's versions in the order of the global log."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    assert wait is not None
    assert wait(PATIENCE)
    return [e.version for e in store.read_all() if e.stream_id == stream_id]


def transaction_id(conn: psycopg.Connection[Any]) -> object:
    return conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()[0]  # type: ignore[index]


def blocked_by(watcher: psycopg.Connection[Any], pid: int) -> list[int]:
    """The server processes waiting for a lock that process ``pid`` holds."""
    cur = watcher.execute(
        "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [pid]
    )
    return [int(row[0]) for row in cur.fetchall()]


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {PATIENCE:g}s for {what}")
        time.sleep(0.005)


def test_a_transaction_with_an_id_is_refused_after_a_younger_writer_of_the_stream(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with psycopg.connect(postgres_url) as conn:
        note(conn, pg_schema, 1)  # the transaction gets its id here
        assert transaction_id(conn) is not None
        store.append("s", [Happened(2)], 1)  # a younger transaction writes s@2 and commits
        with pytest.raises(facta.TransactionConflict) as refused:
            store.append("s", [Happened(3)], 2, connection=conn)
        # s@3 under the older id would come before s@2 in the log.
        assert (refused.value.stream_id, refused.value.expected, refused.value.actual) == (
            "s",
            2,
            2,
        )
        assert "before a younger transaction appended to the stream" in str(refused.value)
        assert "Roll the transaction back and run it again" in str(refused.value)
        assert isinstance(refused.value, facta.ConcurrencyError)  # callers that retry, retry
        # The transaction is usable: its own writes, and streams no younger writer touched.
        note(conn, pg_schema, 2)
        store.append("t", [Happened(1)], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert notes(postgres_url, pg_schema) == [1, 2]
    assert (versions(store, "s"), versions(store, "t")) == ([1, 2], [1])


def test_a_transaction_that_appends_before_writing_its_own_rows_never_meets_the_refusal(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with (
        psycopg.connect(postgres_url) as conn,
        psycopg.connect(postgres_url, autocommit=True) as watcher,
        ThreadPoolExecutor(1) as pool,
    ):
        store.append("s", [Happened(2)], 1, connection=conn)  # its id comes with its claim
        other = pool.submit(store.append, "s", [Happened(3)], facta.ANY)
        wait_for(lambda: blocked_by(watcher, conn.info.backend_pid), "the other append to wait")
        note(conn, pg_schema, 1)
        conn.commit()
        assert other.result().version == 3  # it waited for s, then got a younger id
    assert versions(store, "s") == [1, 2, 3]
    assert notes(postgres_url, pg_schema) == [1]


def test_a_transaction_with_an_id_appends_when_no_younger_transaction_wrote_the_stream(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with psycopg.connect(postgres_url) as conn:
        note(conn, pg_schema, 1)
        store.append("u", [Happened(1)], facta.NO_STREAM)  # younger, but another stream
        store.append("s", [Happened(2)], 1, connection=conn)
        store.append("s", [Happened(3)], 2, connection=conn)  # after its own rows: fine
        conn.commit()
    assert versions(store, "s") == [1, 2, 3]


def test_a_younger_marker_counts_as_a_write_to_the_stream(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with psycopg.connect(postgres_url) as conn:
        note(conn, pg_schema, 1)
        store.delete_stream("s", 1)
        store.reopen_stream("s")
        with pytest.raises(facta.TransactionConflict):
            store.append("s", [Happened(2)], 1, connection=conn)
        conn.rollback()
    assert [e.version for e in store.read_stream("s", from_version=-10)] == [-2, -1, 1]


def test_repeatable_read_meets_a_concurrent_append_as_a_transaction_conflict(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(f'SELECT count(*) FROM "{pg_schema}".notes')  # its snapshot
        store.append("s", [Happened(2)], facta.ANY)  # commits after that snapshot
        with pytest.raises(facta.TransactionConflict, match="could not serialize") as refused:
            store.append("s", [Happened(3)], facta.ANY, connection=conn)
        assert refused.value.actual == 2  # as committed
        note(conn, pg_schema, 1)  # still usable
        store.append("t", [Happened(1)], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert (versions(store, "s"), versions(store, "t")) == ([1, 2], [1])
    assert notes(postgres_url, pg_schema) == [1]


def test_a_deadlock_with_the_applications_own_locks_is_a_transaction_conflict(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    update = f"UPDATE \"{pg_schema}\".notes SET text = 'mine' WHERE id = 0"
    with (
        psycopg.connect(postgres_url) as first,
        psycopg.connect(postgres_url) as second,
        psycopg.connect(postgres_url, autocommit=True) as watcher,
        ThreadPoolExecutor(1) as pool,
    ):
        first.execute("SET deadlock_timeout = '10ms'")  # the first finds the deadlock
        second.execute("SET deadlock_timeout = '60s'")
        first.execute(update)  # first holds the application's row...
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=second)  # ...second, s
        waiting = pool.submit(second.execute, update)
        wait_for(lambda: blocked_by(watcher, first.info.backend_pid), "the second to wait")
        with pytest.raises(facta.TransactionConflict, match="deadlock detected"):
            store.append("s", [Happened(2)], facta.ANY, connection=first)
        first.rollback()
        waiting.result()
        second.commit()
    assert versions(store, "s") == [1]


def test_facta_neither_commits_nor_rolls_back_the_callers_transaction(
    store: facta.EventStore, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url) as conn:  # autocommit off: Django's, in atomic()
        statuses = [conn.info.transaction_status]
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        statuses.append(conn.info.transaction_status)
        with pytest.raises(facta.ConcurrencyError):
            store.append("s", [Happened(2)], 5, connection=conn)
        statuses.append(conn.info.transaction_status)
        assert statuses == [TransactionStatus.IDLE, *[TransactionStatus.INTRANS] * 2]
        conn.rollback()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with conn.transaction():
            store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        assert store.stream_version("s") == 1


def test_a_connection_with_other_cursor_and_row_factories_is_used_as_it_is(
    store: facta.EventStore, postgres_url: str
) -> None:
    # Django's connections bind on the client side; applications like dict rows.
    with psycopg.connect(
        postgres_url, cursor_factory=psycopg.ClientCursor, row_factory=dict_row
    ) as conn:
        store.append("s", [Happened(1), Happened(2)], facta.NO_STREAM, connection=conn)
        store.append_many(
            [
                facta.StreamAppend("s", [Happened(3)], 2),
                facta.StreamAppend("t", [Happened(1)], facta.NO_STREAM),
            ],
            connection=conn,
        )
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        conn.commit()
    assert (store.stream_version("s"), store.stream_version("t")) == (3, 1)


def test_inline_projections_see_the_stores_schema_and_utc_and_the_caller_keeps_its_own(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    seen: list[tuple[str, timedelta | None]] = []

    class Seen(Projection[psycopg.Connection[Any]]):
        name = "seen"

        @handles(Happened)
        def happened(
            self, event: facta.RecordedEvent[Happened], conn: psycopg.Connection[Any]
        ) -> None:
            path = conn.execute("SHOW search_path").fetchone()
            assert path is not None
            seen.append((str(path[0]).replace('"', ""), event.recorded_at.utcoffset()))

    add_inline(store, Seen())
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET timezone = 'Asia/Tokyo'")
        conn.execute("SET search_path = pg_catalog")
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        assert conn.execute("SHOW search_path").fetchone() == ("pg_catalog",)
        conn.commit()
    assert seen == [(f"{pg_schema}, public", timedelta(0))]


def test_connections_an_append_cannot_join_are_refused_and_nothing_is_written(
    store: facta.EventStore, postgres_url: str
) -> None:
    def refused(connection: object, match: str) -> None:
        with pytest.raises(facta.UnusableConnection, match=match):
            store.append("s", [Happened(1)], facta.NO_STREAM, connection=connection)

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        refused(conn, "autocommit mode with no transaction open")
    with psycopg.connect(postgres_url) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        refused(conn, "transaction on connection= has failed")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        refused(conn, "the caller's transaction is read-only")
        conn.rollback()
    other_database = make_conninfo(postgres_url, dbname="postgres")
    with psycopg.connect(other_database) as conn:
        refused(conn, "is to database 'postgres' of another server or database")
    conn = psycopg.connect(postgres_url)
    conn.close()
    refused(conn, "closed or broken")
    with closing(sqlite3.connect(":memory:")) as db:
        refused(db, "takes a psycopg Connection .* got sqlite3.Connection")
    assert store.stream_version("s") == 0


def test_the_store_schema_needs_no_search_path_on_the_callers_connection(
    store: facta.EventStore, postgres_url: str, pg_schema: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier("nowhere")))
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert store.stream_version("s") == 1
