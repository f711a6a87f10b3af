"""The GDPR test: 1,000 subjects, forget 10, and no stored byte keeps what they were.

Personal data of 1,000 customers goes into events of many streams (each customer's own, and
shared order streams) and into snapshots; a read model (built by a facta projection) copies
it, and a projection parks some events in its dead letters with errors that quote it. Then 10
customers are forgotten and the read models rebuilt. Afterwards their plaintext is nowhere:
not in the SQLite file (nor its ``-wal``), searched byte by byte, not in any table of the
PostgreSQL schema, not in anything the memory store holds; nor is the wrapped data key they
had. The 990 others still load, project and check, and the demo's read models rebuild.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
import psycopg
import pytest
from psycopg import sql

import facta
from facta import demo
from facta.personal import (
    STREAM,
    AesKeyProvider,
    Personal,
    Subject,
    generate_master_key,
    is_forgotten,
)
from facta.projections import OnError, Projection, ProjectionRunner, handles

SUBJECTS = 1000
FORGOTTEN = range(0, SUBJECTS, 100)  # 10 of them
ORDER_STREAMS = 100


@facta.event("gdpr_test.Registered")
@dataclass(frozen=True)
class Registered:
    customer_id: Annotated[str, Subject]
    email: Annotated[str, Personal]
    name: Annotated[str, Personal]


@facta.event("gdpr_test.Shipped")
class Shipped(msgspec.Struct, frozen=True):
    customer_id: Annotated[str, Subject]
    address: Annotated[str, Personal]
    parcels: int


@facta.event("gdpr_test.Ordered")
@dataclass(frozen=True)
class Ordered:
    amount: int


@dataclass
class ShopperState:
    email: Annotated[str, Personal(subject=STREAM)]
    orders: int


class Shopper(facta.Aggregate):
    type_name = "gdpr_test.Shopper"
    snapshot_every = 3
    snapshot_type = ShopperState

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.email: str = ""
        self.orders = 0

    def apply(self, event: object) -> None:
        match event:
            case Registered(email=email):
                self.email = email
            case Ordered():
                self.orders += 1

    def snapshot_state(self) -> ShopperState:
        return ShopperState(self.email, self.orders)

    def restore_state(self, state: ShopperState) -> None:
        self.email, self.orders = state.email, state.orders


def customer(n: int) -> str:
    return f"gdpr-{n:04d}"  # the stream id is the subject too


def secrets_of(n: int) -> list[bytes]:
    """Every plaintext value customer ``n`` gave, as it would be stored."""
    return [
        f"subject{n:04d}@mail.example".encode(),
        f"Forename{n:04d} Lastname{n:04d}".encode(),
        f"{n:04d} Privacy Lane".encode(),
    ]


# -- read models -----------------------------------------------------------------------------


def execute(db: Any, query: str, params: tuple[Any, ...]) -> None:
    """Run a read model's statement on SQLite (``?``), PostgreSQL (``%s``) or a dict (memory)."""
    if isinstance(db, sqlite3.Connection):
        db.execute(query, params)
    else:
        db.execute(query.replace("?", "%s"), params)


MEMORY_DIRECTORY: dict[str, tuple[object, object]] = {}


class Directory(Projection[Any]):
    """A customer directory holding emails and addresses: personal data in a read model.

    A forgotten customer's fields arrive as Forgotten: the row keeps NULL instead."""

    name = "gdpr_directory"

    def setup(self, db: Any) -> None:
        if db is not None:
            execute(
                db,
                "CREATE TABLE IF NOT EXISTS gdpr_directory (customer_id TEXT PRIMARY KEY,"
                " email TEXT, address TEXT)",
                (),
            )

    def reset(self, db: Any) -> None:
        if db is None:
            MEMORY_DIRECTORY.clear()
        else:
            execute(db, "DELETE FROM gdpr_directory", ())

    @handles(Registered)
    def registered(self, event: facta.RecordedEvent[Registered], db: Any) -> None:
        email = None if is_forgotten(event.data.email) else event.data.email
        if db is None:
            MEMORY_DIRECTORY[event.data.customer_id] = (email, None)
        else:
            execute(db, "INSERT INTO gdpr_directory VALUES (?, ?, NULL)", (event.stream_id, email))

    @handles(Shipped)
    def shipped(self, event: facta.RecordedEvent[Shipped], db: Any) -> None:
        address = None if is_forgotten(event.data.address) else event.data.address
        if db is None:
            email, _ = MEMORY_DIRECTORY[event.data.customer_id]
            MEMORY_DIRECTORY[event.data.customer_id] = (email, address)
        else:
            query = "UPDATE gdpr_directory SET address = ? WHERE customer_id = ?"
            execute(db, query, (address, event.data.customer_id))


class Picky(Projection[Any]):
    """Refuses every 50th customer, quoting their email: those land in the dead letters."""

    name = "gdpr_picky"

    def reset(self, db: Any) -> None:
        """No read model: a rebuild only replays (and parks again)."""

    @handles(Registered)
    def registered(self, event: facta.RecordedEvent[Registered], db: Any) -> None:
        if int(event.stream_id[-4:]) % 50 == 0:
            raise ValueError(f"will not mail {event.data.email} ({event.data.name})")


# -- the store under test, and how to search what it stores ----------------------------------


@pytest.fixture
def keys() -> AesKeyProvider:
    return AesKeyProvider(generate_master_key())


def fill(store: facta.EventStore) -> None:
    """1,000 shoppers (4 events each, a snapshot each) and shipments in shared streams."""
    shoppers = facta.Repository(store, Shopper)
    for n in range(SUBJECTS):
        email, name, _ = (value.decode() for value in secrets_of(n))
        shopper = Shopper(customer(n))
        shopper.record(Registered(customer(n), email, name))
        for amount in (10, 20, 30):
            shopper.record(Ordered(amount))
        shoppers.save(shopper)
    per_stream = SUBJECTS // ORDER_STREAMS
    for stream in range(0, ORDER_STREAMS, 20):  # 20 order streams per append
        appends = []
        for s in range(stream, stream + 20):
            shipped = [
                Shipped(customer(n), secrets_of(n)[2].decode(), n % 3 + 1)
                for n in range(s * per_stream, (s + 1) * per_stream)
            ]
            appends.append(facta.StreamAppend(f"orders-{s}", shipped, facta.NO_STREAM))
        store.append_many(appends)


def project(store: facta.EventStore, *, rebuild: bool) -> None:
    for projection, on_error in ((Directory(), OnError.STOP), (Picky(), OnError.DEAD_LETTER)):
        with ProjectionRunner(store, projection, on_error=on_error, batch_size=500) as runner:
            if rebuild:
                runner.rebuild()
            else:
                runner.catch_up()


def held_by_memory(store: facta.EventStore) -> bytes:
    """Everything a memory store holds that could keep personal data, as bytes."""
    rows = store.recorder.read_all(facta.Checkpoint(), None, 1_000_000)
    blob = b"".join(row.data + row.metadata + row.stream_id.encode() for row in rows)
    for stream_id, _ in store.streams():
        blob += b"".join(s.state for s in store.read_snapshots(stream_id))
    blob += b"".join(key.wrapped for key in store.recorder.key_table().page(None, 1_000_000))
    for status in store.recorder.projection_statuses():
        blob += repr(status).encode()
        for letter in store.recorder.checkpoints(status.name).dead_letters():
            blob += repr(letter).encode()
    return blob + repr(MEMORY_DIRECTORY).encode()


def held_by_sqlite(path: Path) -> bytes:
    """The raw bytes of the SQLite file and of its -wal (none once the store is closed)."""
    found = path.read_bytes()
    wal = Path(f"{path}-wal")
    return found + (wal.read_bytes() if wal.exists() else b"")


def found_in_postgres(url: str, schema: str, needle: bytes) -> list[str]:
    """The tables of ``schema`` with a row whose text, or one of whose bytea columns, holds
    ``needle``."""
    found = []
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [schema],
        ).fetchall()
        for (table,) in tables:
            columns = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
                " AND table_name = %s AND data_type = 'bytea'",
                [schema, table],
            ).fetchall()
            tests: list[sql.Composable] = [
                sql.SQL("position(%(n)s::bytea in convert_to(t::text, 'UTF8')) > 0")
            ]
            tests += [
                sql.SQL("position(%(n)s::bytea in t.{}) > 0").format(sql.Identifier(column))
                for (column,) in columns
            ]
            query = sql.SQL("SELECT count(*) FROM {} AS t WHERE {}").format(
                sql.Identifier(schema, table), sql.SQL(" OR ").join(tests)
            )
            row = conn.execute(query, {"n": needle}).fetchone()
            if row and row[0]:
                found.append(table)
    return found


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> Iterator[tuple[str, str, Callable[[bytes], bool]]]:
    """``(backend, url, holds)``: ``holds(needle)`` searches everything the store keeps (call
    it once the store is closed)."""
    MEMORY_DIRECTORY.clear()
    if request.param == "memory":
        yield "memory", "memory://", lambda needle: False  # replaced by the test (in memory)
    elif request.param == "sqlite":
        path = tmp_path / "gdpr.db"
        yield "sqlite", f"sqlite:///{path}", lambda needle: needle in held_by_sqlite(path)
    else:
        schema = request.getfixturevalue("pg_schema")
        url = f"{postgres_url}?schema={schema}"
        yield "postgres", url, lambda needle: bool(found_in_postgres(postgres_url, schema, needle))


@pytest.mark.slow
def test_forgotten_subjects_leave_no_stored_byte_and_everything_else_still_works(
    where: tuple[str, str, Callable[[bytes], bool]],
    keys: AesKeyProvider,
    readable: Callable[[facta.EventStore], None],
) -> None:
    backend, url, holds = where
    options: dict[str, object] = {"keys": keys}
    if backend == "sqlite":
        options["synchronous"] = "NORMAL"
    with facta.connect(url, codec=None, **options) as store:
        fill(store)
        if backend == "sqlite":  # the demo's bank, in the same file, with its read models
            demo_accounts = [facta.id_from_key("account", owner) for owner in ("ada", "grace")]
            accounts = facta.Repository(store, demo.Account)
            for owner, account_id in zip(("Ada", "Grace"), demo_accounts, strict=True):
                account = demo.Account.open(owner, id=account_id)
                account.deposit(100_00)
                accounts.save(account)
            demo.transfer(store, demo_accounts[0], demo_accounts[1], 30_00)
        readable(store)
        project(store, rebuild=False)
        wrapped = {key.subject: key.wrapped for key in store.recorder.key_table().page(None, 10**6)}
        demo_keys = 2 if backend == "sqlite" else 0  # the demo's owners are personal too
        assert len(wrapped) == SUBJECTS + demo_keys
        if backend == "memory":
            before = held_by_memory(store)
            email, _, address = secrets_of(0)
            assert email in before  # the search sees what the read model holds
            assert address in before

        for n in FORGOTTEN:
            assert store.forget(customer(n))
        project(store, rebuild=True)  # the read models let go of the forgotten data

        # Everything else still loads, projects and checks.
        shoppers = facta.Repository(store, Shopper)
        for n in range(SUBJECTS):
            shopper = shoppers.load(customer(n))
            assert shopper.orders == 3
            expected = secrets_of(n)[0].decode()
            assert is_forgotten(shopper.email) if n in FORGOTTEN else shopper.email == expected
        readable(store)
        shipped = [e.data for e in store.read_all(types=["gdpr_test.Shipped"])]
        assert len(shipped) == SUBJECTS
        assert sum(is_forgotten(s.address) for s in shipped) == len(FORGOTTEN)
        assert facta.check_store(store, [Shopper]).ok
        with ProjectionRunner(store, Picky(), on_error=OnError.DEAD_LETTER) as picky:
            assert len(picky.dead_letters()) == SUBJECTS // 50
        if backend == "sqlite":  # the demo's read models rebuild as ever
            for projection in (demo.AccountBalances(), demo.TransactionsPerDay()):
                with ProjectionRunner(store, projection) as runner:
                    runner.rebuild()
            balances, _ = demo.read_models(store, Path(url.removeprefix("sqlite:///")))
            assert [(owner, balance) for _, owner, balance in balances] == [
                ("Ada", "70.00"),
                ("Grace", "130.00"),
            ]
        if backend == "memory":
            after = held_by_memory(store)
            holds = after.__contains__
            assert MEMORY_DIRECTORY[customer(0)] == (None, None)
    # Searched once the store is closed: SQLite's last connection checkpoints its -wal.
    for n in FORGOTTEN:
        for secret in secrets_of(n):
            assert not holds(secret), f"{secret!r} of a forgotten subject is still stored"
        assert not holds(wrapped[customer(n)]), f"the data key of {customer(n)} is still stored"
    if backend != "memory":  # a kept subject's values are in the read model: the search works
        assert holds(secrets_of(1)[0])
        assert holds(secrets_of(1)[2])
