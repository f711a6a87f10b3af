"""Appending in the caller's transaction (``connection=``): the events and the application's own
rows commit together or not at all, on SQLite and PostgreSQL, sync and async.

The PostgreSQL global-order rule and isolation levels are in test_caller_transaction_postgres.py,
SQLite's reader transactions in test_caller_transaction_sqlite.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import facta
from facta.projections import AsyncProjection, Projection, ProjectionError, handles
from facta.projections.inline import add_inline, add_inline_async

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@facta.event("test.caller_transaction.Opened")
@dataclass(frozen=True)
class Opened:
    owner: str


REFUSED = "mallory"  # the inline projections raise on an account opened for this owner


class Account(facta.Aggregate):
    snapshot_every = 1  # a plain save would snapshot every time
    snapshot_type = Opened

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.owner = ""

    def apply(self, event: object) -> None:
        if isinstance(event, Opened):
            self.owner = event.owner

    def snapshot_state(self) -> Opened:
        return Opened(self.owner)

    def restore_state(self, state: object) -> None:
        assert isinstance(state, Opened)
        self.owner = state.owner


def owner(event: facta.RecordedEvent[Opened]) -> str:
    if event.data.owner == REFUSED:
        raise ValueError(f"{REFUSED} may not open accounts")
    return event.data.owner


class SQLiteOwners(Projection[sqlite3.Connection]):
    name = "caller-owners"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS owners (stream_id TEXT PRIMARY KEY, owner TEXT)")

    @handles(Opened)
    def opened(self, event: facta.RecordedEvent[Opened], db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO owners VALUES (?, ?)", (event.stream_id, owner(event)))


class PostgresOwners(Projection[psycopg.Connection[Any]]):
    name = "caller-owners"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS owners (stream_id text PRIMARY KEY, owner text)")

    @handles(Opened)
    def opened(self, event: facta.RecordedEvent[Opened], conn: psycopg.Connection[Any]) -> None:
        conn.execute("INSERT INTO owners VALUES (%s, %s)", (event.stream_id, owner(event)))


class AsyncPostgresOwners(AsyncProjection[psycopg.AsyncConnection[Any]]):
    name = "caller-owners"

    async def setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS owners (stream_id text PRIMARY KEY, owner text)"
        )

    @handles(Opened)
    async def opened(
        self, event: facta.RecordedEvent[Opened], conn: psycopg.AsyncConnection[Any]
    ) -> None:
        await conn.execute("INSERT INTO owners VALUES (%s, %s)", (event.stream_id, owner(event)))


class App:
    """The application's side: connections of its own to the store's database, in which it
    keeps a table of signed-up names beside facta's tables."""

    def __init__(self, backend: str, tmp_path: Path, postgres_url: str, schema: str) -> None:
        self.backend = backend
        self.path = tmp_path / "bank.db"
        self.postgres_url, self.schema = postgres_url, schema
        self.url = (
            f"sqlite:///{self.path}" if backend == "sqlite" else f"{postgres_url}?schema={schema}"
        )

    def table(self, name: str) -> str:
        if self.backend == "sqlite":
            return name
        return sql.Identifier(self.schema, name).as_string()

    def setup(self) -> None:
        """The application's table (once the store exists: on PostgreSQL, in its schema)."""
        with self.connect() as conn:
            conn.execute(f"CREATE TABLE {self.table('signups')} (name TEXT PRIMARY KEY)")
            conn.commit()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection with a transaction begun (a psycopg one has autocommit off), closed
        on the way out: what was not committed is gone."""
        conn: Any
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn = psycopg.connect(self.postgres_url)
        try:
            yield conn
        finally:
            conn.close()

    async def connect_async(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.postgres_url)

    def insert(self, conn: Any, name: str) -> None:
        mark = "?" if self.backend == "sqlite" else "%s"
        conn.execute(f"INSERT INTO {self.table('signups')} VALUES ({mark})", (name,))

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """What is committed in the table, seen from a new connection."""
        query = f"SELECT * FROM {self.table(table)} ORDER BY 1"
        if self.backend == "sqlite":
            with closing(sqlite3.connect(self.path)) as db:
                return list(db.execute(query).fetchall())
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            return list(conn.execute(query).fetchall())


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> App:
    schema = request.getfixturevalue("pg_schema") if request.param == "postgres" else ""
    return App(request.param, tmp_path, postgres_url, schema)


@pytest.fixture
def store(app: App) -> Iterator[facta.EventStore]:
    with facta.connect(app.url) as opened:
        opened.stream_version("migrate-now")
        app.setup()
        yield opened


@pytest.fixture
def postgres_app(tmp_path: Path, postgres_url: str, pg_schema: str) -> App:
    return App("postgres", tmp_path, postgres_url, pg_schema)


@pytest.fixture
async def async_pg_store(postgres_app: App) -> AsyncIterator[facta.AsyncEventStore]:
    async with facta.connect_async(postgres_app.url) as opened:
        await opened.stream_version("migrate-now")
        postgres_app.setup()
        yield opened


def inline_owners(store: facta.EventStore, app: App) -> None:
    add_inline(store, SQLiteOwners() if app.backend == "sqlite" else PostgresOwners())


def test_a_rolled_back_transaction_keeps_neither_the_events_nor_the_row_a_committed_one_both(
    store: facta.EventStore, app: App
) -> None:
    with app.connect() as conn:
        app.insert(conn, "ada")
        result = store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        assert result.version == 1
        assert store.stream_version("account-ada") == 0  # facta committed nothing
        conn.rollback()
    assert store.stream_version("account-ada") == 0
    assert app.rows("signups") == []

    with app.connect() as conn:
        app.insert(conn, "ada")
        store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert [e.data for e in store.read_stream("account-ada")] == [Opened("ada")]
    assert app.rows("signups") == [("ada",)]


def test_an_inline_projection_runs_in_the_callers_transaction_and_on_its_connection(
    store: facta.EventStore, app: App
) -> None:
    inline_owners(store, app)
    with app.connect() as conn:
        app.insert(conn, "ada")
        store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        assert app.rows("owners") == []  # uncommitted, so unseen by others
        conn.rollback()
    assert (app.rows("signups"), app.rows("owners")) == ([], [])
    assert store.stream_version("account-ada") == 0

    with app.connect() as conn:
        app.insert(conn, "ada")
        store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert app.rows("signups") == [("ada",)]
    assert app.rows("owners") == [("account-ada", "ada")]
    assert store.stream_version("account-ada") == 1


def test_each_append_of_a_transaction_shows_only_its_own_events_to_inline_projections(
    store: facta.EventStore, app: App
) -> None:
    inline_owners(store, app)
    with app.connect() as conn:
        store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        store.append("account-bob", [Opened("bob")], facta.NO_STREAM, connection=conn)
        conn.commit()  # the second append would have inserted ada's row twice
    assert app.rows("owners") == [("account-ada", "ada"), ("account-bob", "bob")]


def test_a_refused_append_writes_nothing_and_leaves_the_transaction_usable(
    store: facta.EventStore, app: App
) -> None:
    inline_owners(store, app)
    store.append("account-ada", [Opened("ada")], facta.NO_STREAM)
    taken = facta.NewEvent(Opened("taken"))
    store.append("account-taken", [taken], facta.NO_STREAM)
    with app.connect() as conn:
        app.insert(conn, "before")
        with pytest.raises(facta.ConcurrencyError, match="expected version NO_STREAM"):
            store.append("account-ada", [Opened("eve")], facta.NO_STREAM, connection=conn)
        with pytest.raises(facta.DuplicateEventId):
            store.append("account-new", [taken], facta.NO_STREAM, connection=conn)
        with pytest.raises(ProjectionError, match="mallory may not open accounts"):
            store.append_many(
                [
                    facta.StreamAppend("account-bob", [Opened("bob")], facta.NO_STREAM),
                    facta.StreamAppend("account-mal", [Opened(REFUSED)], facta.NO_STREAM),
                ],
                connection=conn,
            )
        app.insert(conn, "after")
        store.append("account-cy", [Opened("cy")], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert app.rows("signups") == [("after",), ("before",)]
    assert app.rows("owners") == [
        ("account-ada", "ada"),
        ("account-cy", "cy"),
        ("account-taken", "taken"),
    ]
    streams = {s.stream_id: s.version for s in store.streams()}
    assert streams == {"account-ada": 1, "account-cy": 1, "account-taken": 1}


def test_a_retried_append_of_stored_events_in_a_transaction_is_already_appended(
    store: facta.EventStore, app: App
) -> None:
    event = facta.NewEvent(Opened("ada"))
    store.append("account-ada", [event], facta.NO_STREAM)
    with app.connect() as conn:
        again = store.append("account-ada", [event], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert again.already_appended
    assert store.stream_version("account-ada") == 1


def test_append_many_in_a_transaction_writes_every_stream_or_none(
    store: facta.EventStore, app: App
) -> None:
    appends = [
        facta.StreamAppend("account-ada", [Opened("ada")], facta.NO_STREAM),
        facta.StreamAppend("account-bob", [Opened("bob"), Opened("bob")], facta.NO_STREAM),
    ]
    with app.connect() as conn:
        results = store.append_many(appends, connection=conn)
        conn.rollback()
    assert [(r.stream_id, r.version) for r in results] == [("account-ada", 1), ("account-bob", 2)]
    assert list(store.streams()) == []
    with app.connect() as conn:
        store.append_many(appends, connection=conn)
        conn.commit()
    assert {s.stream_id: s.version for s in store.streams()} == {
        "account-ada": 1,
        "account-bob": 2,
    }


def test_a_repository_saves_in_the_callers_transaction_and_takes_no_snapshot_there(
    store: facta.EventStore, app: App
) -> None:
    repository = facta.Repository(store, Account)
    account = Account("account-ada")
    account.record(Opened("ada"))
    with app.connect() as conn:
        app.insert(conn, "ada")
        repository.save(account, connection=conn)
        conn.rollback()  # a snapshot at version 1 would now describe an event never stored
    assert account.version == 1
    assert store.read_snapshots("account-ada") == []
    other = Account("account-ada")
    other.record(Opened("bob"))
    with app.connect() as conn:
        repository.save(other, connection=conn)
        conn.commit()
    assert store.read_snapshots("account-ada") == []
    assert repository.load("account-ada").owner == "bob"  # and the load takes the snapshot
    assert [s.state for s in store.read_snapshots("account-ada")] == [b'{"owner":"bob"}']


def test_a_read_only_store_refuses_to_append_in_a_transaction(
    store: facta.EventStore, app: App
) -> None:
    with facta.connect(app.url, read_only=True) as reader, app.connect() as conn:
        with pytest.raises(facta.StoreError, match="read-only; nothing was written"):
            reader.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        conn.rollback()


@pytest.mark.postgres
async def test_the_async_postgres_store_appends_in_an_async_connections_transaction(
    async_pg_store: facta.AsyncEventStore, postgres_app: App
) -> None:
    store, app = async_pg_store, postgres_app
    await add_inline_async(store, AsyncPostgresOwners())
    async with await app.connect_async() as conn:
        await conn.execute(f"INSERT INTO {app.table('signups')} VALUES ('ada')")
        await store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        await conn.rollback()
    assert (app.rows("signups"), app.rows("owners")) == ([], [])
    assert await store.stream_version("account-ada") == 0

    async with await app.connect_async() as conn:
        await conn.execute(f"INSERT INTO {app.table('signups')} VALUES ('ada')")
        await store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
        with pytest.raises(facta.ConcurrencyError):
            await store.append("account-ada", [Opened("eve")], 0, connection=conn)
        await conn.commit()
    assert app.rows("signups") == [("ada",)]
    assert app.rows("owners") == [("account-ada", "ada")]
    assert await store.stream_version("account-ada") == 1


@pytest.mark.postgres
async def test_the_async_postgres_store_refuses_a_sync_connection_and_the_other_way_round(
    async_pg_store: facta.AsyncEventStore, postgres_app: App
) -> None:
    refused = pytest.raises(facta.UnusableConnection, match="takes a psycopg AsyncConnection")
    with postgres_app.connect() as conn, refused:
        await async_pg_store.append("a", [Opened("ada")], facta.ANY, connection=conn)
    async with await postgres_app.connect_async() as aconn:
        refused = pytest.raises(facta.UnusableConnection, match="takes a psycopg Connection")
        with facta.connect(postgres_app.url) as store, refused:
            store.append("a", [Opened("ada")], facta.ANY, connection=aconn)
    assert await async_pg_store.stream_version("a") == 0


async def test_the_async_sqlite_store_appends_on_the_callers_thread(tmp_path: Path) -> None:
    app = App("sqlite", tmp_path, "", "")
    async with facta.connect_async(app.url) as store:
        await add_inline_async(store, SQLiteOwners())
        app.setup()
        with app.connect() as conn:  # made on this thread: sqlite3 checks that it is used here
            app.insert(conn, "ada")
            await store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
            conn.rollback()
        assert await store.stream_version("account-ada") == 0
        with app.connect() as conn:
            app.insert(conn, "ada")
            await store.append("account-ada", [Opened("ada")], facta.NO_STREAM, connection=conn)
            conn.commit()
        assert await store.stream_version("account-ada") == 1
    assert (app.rows("signups"), app.rows("owners")) == ([("ada",)], [("account-ada", "ada")])


def test_the_memory_store_has_no_connection_to_append_in() -> None:
    with facta.connect("memory://") as store:
        with pytest.raises(
            facta.UnusableConnection,
            match="memory:// store cannot append in the caller's transaction",
        ):
            store.append("a", [Opened("ada")], facta.ANY, connection=object())
        assert store.stream_version("a") == 0


async def test_the_async_memory_store_has_no_connection_to_append_in() -> None:
    async with facta.connect_async("memory://") as store:
        with pytest.raises(facta.UnusableConnection, match="has no connection to share"):
            await store.append("a", [Opened("ada")], facta.ANY, connection=object())
        assert await store.stream_version("a") == 0
