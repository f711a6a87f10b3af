"""The raw drivers, no library: the same rows in the same table shape as facta's.

This is the physical limit the libraries are measured against. Payloads are encoded once,
before timing. Writes are a plain INSERT per event: on PostgreSQL one autocommitted statement
(one round trip) for a single event, ``executemany`` in a transaction for a save of several;
on SQLite ``BEGIN IMMEDIATE``, the INSERT(s), ``COMMIT``. Reads fetch the rows (the five
columns a load needs, or every column for the global log) and decode each payload with msgspec
into a dataclass of the event's fields, back to back: the work no library can avoid. The
tables copy facta's columns, keys and indexes (the migrations under
``src/facta/backends/*/sql/``); ``bare`` ones have the columns and nothing else (no key, no
index), W1's second floor. The SQLite connection uses facta's pragmas.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
import psycopg

from bench.model import POSTGRES_URL, Sizes
from bench.workloads import (
    AsyncWorkloads,
    SyncWorkloads,
    Unavailable,
    create_schema,
    drop_schema,
)

_SQLITE_DDL = """
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    encoding       INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at    REAL    NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX events_type ON events (type, position);
CREATE TABLE snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    aggregate_type TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    encoding       INTEGER NOT NULL,
    checksum       INTEGER NOT NULL,
    state          BLOB    NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
"""

_POSTGRES_DDL = """
CREATE TABLE events (
    transaction_id bigint NOT NULL,
    position       bigint GENERATED ALWAYS AS IDENTITY,
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,
    event_id       uuid NOT NULL,
    type           text COLLATE "C" NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,
    data           bytea NOT NULL,
    metadata       bytea NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transaction_id, position),
    UNIQUE (stream_id, version),
    UNIQUE (event_id)
);
CREATE TABLE snapshots (
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,
    aggregate_type text NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,
    checksum       bigint NOT NULL,
    state          bytea NOT NULL,
    PRIMARY KEY (stream_id, version)
);
"""

# W1's second floor: facta's columns in a table with no key, index or identity.
_POSTGRES_BARE_DDL = """
CREATE TABLE events (
    transaction_id bigint NOT NULL,
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,
    event_id       uuid NOT NULL,
    type           text COLLATE "C" NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,
    data           bytea NOT NULL,
    metadata       bytea NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class ItemAdded:
    """The event's fields, as facta's benchmark event declares them: the typed decode target."""

    item_id: uuid.UUID
    name: str
    quantity: int
    price: Decimal
    at: datetime
    tags: list[str]


@dataclass(frozen=True)
class CartState:
    items: int
    quantity: int


_DECODE = msgspec.json.Decoder(ItemAdded).decode
_DECODE_STATE = msgspec.json.Decoder(CartState).decode
# What a load reads (facta's replay reads the same five columns).
_REPLAY = "version, type, schema_version, encoding, data"
_COLUMNS = (
    "stream_id, version, position, event_id, type, schema_version, encoding, data, metadata,"
    " recorded_at"
)
_SQLITE_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, schema_version, encoding, data,"
    " metadata, recorded_at) VALUES (?, ?, ?, ?, 1, 0, ?, ?, ?)"
)
_POSTGRES_INSERT = (
    "INSERT INTO events (transaction_id, stream_id, version, event_id, type, schema_version,"
    " encoding, data, metadata) VALUES (pg_current_xact_id()::text::bigint, %s, %s, %s, %s,"
    " 1, 0, %s, %s)"
)
_TOTALS = (
    "CREATE TABLE cart_totals"
    " (cart_id TEXT PRIMARY KEY, items INTEGER NOT NULL, quantity INTEGER NOT NULL)"
)
_CHECKPOINTS = (
    "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, transaction_id BIGINT, position BIGINT)"
)
_UPSERT = (
    "INSERT INTO cart_totals VALUES ({0}, 1, {0}) ON CONFLICT (cart_id) DO UPDATE SET"
    " items = cart_totals.items + 1, quantity = cart_totals.quantity + excluded.quantity"
)
_CHECKPOINT = "UPDATE checkpoints SET transaction_id = {0}, position = {0} WHERE name = 'totals'"
_RESET = (
    "DELETE FROM cart_totals",
    "DELETE FROM checkpoints",
    "INSERT INTO checkpoints VALUES ('totals', 0, 0)",
)
_PAGE = (
    "SELECT transaction_id, position, stream_id, data FROM events"
    " WHERE (transaction_id, position) > (%s, %s) ORDER BY transaction_id, position LIMIT %s"
)
_BATCH = 500  # events per projection transaction, as facta's runner


def _decoded(rows: list[Any], column: int) -> int:
    """Decode each row's payload into the event class; how many there were."""
    decode = _DECODE
    events = [decode(row[column]) for row in rows]
    return len(events)


_TYPE = "bench.ItemAdded"
_METADATA = b"{}"


class _Rows:
    """Pre-encoded payloads, and row makers for a stream."""

    def __init__(self, base: SyncWorkloads | AsyncWorkloads) -> None:
        encoder = msgspec.json.Encoder()
        self.payloads = [encoder.encode(fields._asdict()) for fields in base.pool]
        self.state = encoder.encode({"items": 0, "quantity": 0})

    def payload(self, i: int) -> bytes:
        return self.payloads[i % len(self.payloads)]


class RawSQLite(SyncWorkloads):
    """sqlite3 on a WAL file with facta's pragmas."""

    def __init__(self, sizes: Sizes, schema: str, synchronous: str = "FULL") -> None:
        super().__init__(sizes, schema)
        self.synchronous = synchronous  # FULL as facta's default; NORMAL as its opt-in
        self.rows = _Rows(self)
        self.path = ""
        self.db: sqlite3.Connection | None = None
        self.ids: dict[str, str] = {}
        self.streams: list[str] = []
        self.writer_dbs: list[sqlite3.Connection] = []

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        return db

    def fresh_db(self) -> sqlite3.Connection:
        if self.db is not None:
            self.db.close()
        self.path = str(self.new_file())
        self.db = self.connect()
        self.db.executescript(_SQLITE_DDL)
        return self.db

    def row(self, stream_id: str, version: int) -> tuple[Any, ...]:
        payload = self.rows.payload(version)
        return (stream_id, version, uuid.uuid4().bytes, _TYPE, payload, _METADATA, time.time())

    def append(self, db: sqlite3.Connection, stream_id: str, start: int, count: int) -> None:
        """One transaction: ``count`` events after version ``start``."""
        db.execute("BEGIN IMMEDIATE")
        if count == 1:
            db.execute(_SQLITE_INSERT, self.row(stream_id, start + 1))
        else:
            db.executemany(
                _SQLITE_INSERT,
                [self.row(stream_id, v) for v in range(start + 1, start + count + 1)],
            )
        db.execute("COMMIT")

    def snapshot(self, db: sqlite3.Connection, stream_id: str, version: int) -> None:
        db.execute(
            "INSERT INTO snapshots VALUES (?, ?, 'Cart', 1, 0, 0, ?)",
            (stream_id, version, self.rows.state),
        )

    def build(self, stream_id: str, length: int, save: int, snapshots: bool = False) -> str:
        db = self.db
        assert db is not None
        for start in range(0, length, save):
            count = min(save, length - start)
            self.append(db, stream_id, start, count)
            if snapshots and (start + count) % self.sizes.snapshot_every == 0:
                self.snapshot(db, stream_id, start + count)
        return stream_id

    def setup(self, group: str) -> dict[str, str]:
        self.fresh_db()
        sizes = self.sizes
        if group == "W3":
            for n in sizes.w3_lengths:
                self.ids[f"W3-{n}"] = self.build(str(uuid.uuid4()), n, 1000)
        elif group == "W4":
            every = sizes.snapshot_every
            self.ids["W4-head"] = self.build(str(uuid.uuid4()), sizes.w4_length, every, True)
            self.ids["W4-99"] = self.build(
                str(uuid.uuid4()), sizes.w4_length + every - 1, every, True
            )
        elif group in ("W5", "W6"):
            for _ in range(self.log_length(group) // sizes.save_size):
                self.build(str(uuid.uuid4()), sizes.save_size, sizes.save_size)
            self.conn_or_db().execute(_TOTALS)
            self.conn_or_db().execute(_CHECKPOINTS)
            self.conn_or_db().commit()
        return {}

    def conn_or_db(self) -> sqlite3.Connection:
        assert self.db is not None
        return self.db

    def prepare(self, case: str) -> None:
        if case == "W6":
            assert self.db is not None
            self.db.execute("BEGIN")
            for statement in _RESET:
                self.db.execute(statement)
            self.db.execute("COMMIT")
        if case in ("W1", "W2", "W2-snap", "W7"):
            db = self.fresh_db()
        if case == "W7":
            self.streams = [str(uuid.uuid4()) for _ in range(self.sizes.w7_writers)]
            for stream_id in self.streams:
                self.append(db, stream_id, 0, 1)
            for writer in self.writer_dbs:
                writer.close()
            self.writer_dbs = [self.connect() for _ in self.streams]

    def run(self, case: str) -> int:
        db = self.db
        assert db is not None
        sizes = self.sizes
        if case == "W1":
            for _ in range(sizes.w1_aggregates):
                self.append(db, str(uuid.uuid4()), 0, 1)
            return sizes.w1_aggregates
        if case in ("W2", "W2-snap"):
            self.build(str(uuid.uuid4()), sizes.w2_events, sizes.save_size, case == "W2-snap")
            return sizes.w2_events
        if case.startswith("W3-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                rows = db.execute(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = ? ORDER BY version",
                    (self.ids[case],),
                ).fetchall()
                count = _decoded(rows, 4)
            assert count == int(case[3:])
            return loads
        if case.startswith("W4-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                state, version = db.execute(
                    "SELECT state, version FROM snapshots WHERE stream_id = ?"
                    " ORDER BY version DESC LIMIT 1",
                    (self.ids[case],),
                ).fetchone()
                _DECODE_STATE(state)
                rows = db.execute(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = ? AND version > ?"
                    " ORDER BY version",
                    (self.ids[case], version),
                ).fetchall()
                _decoded(rows, 4)
            return loads
        if case == "W5":
            rows = db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY position").fetchall()
            count = _decoded(rows, 7)
            assert count == sizes.w5_events
            return count
        if case == "W6":
            count = self.project(db)
            assert count == sizes.w6_events, count
            return count
        if case == "W7":

            def write(db: sqlite3.Connection, stream_id: str) -> None:
                for version in range(1, sizes.w7_saves + 1):
                    self.append(db, stream_id, version, 1)

            _threads(write, list(zip(self.writer_dbs, self.streams, strict=True)))
            return len(self.streams) * sizes.w7_saves
        raise ValueError(case)

    def project(self, db: sqlite3.Connection) -> int:
        """Catch up: a page of rows, then their upserts and the checkpoint in one transaction."""
        decode, upsert, checkpoint = (
            msgspec.json.decode,
            _UPSERT.format("?"),
            _CHECKPOINT.format("?"),
        )
        count = position = 0
        while True:
            rows = db.execute(
                "SELECT position, stream_id, data FROM events WHERE position > ?"
                " ORDER BY position LIMIT ?",
                (position, _BATCH),
            ).fetchall()
            if not rows:
                return count
            db.execute("BEGIN IMMEDIATE")
            db.executemany(upsert, [(s, decode(d)["quantity"]) for _, s, d in rows])
            position = rows[-1][0]
            db.execute(checkpoint, (0, position))
            db.execute("COMMIT")
            count += len(rows)

    def close(self) -> None:
        for db in [*self.writer_dbs, self.db]:
            if db is not None:
                db.close()
        self.remove_folder()


def _threads(work: Callable[..., None], arguments: list[tuple[Any, ...]]) -> None:
    """Run ``work`` once per argument tuple, each in a thread of its own, started together."""
    start = threading.Barrier(len(arguments))

    def run(*args: Any) -> None:
        start.wait()
        work(*args)

    threads = [threading.Thread(target=run, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class RawPsycopg(SyncWorkloads):
    """psycopg 3, one autocommitted connection: an INSERT per single-event save, a transaction
    per save of several. ``bare``: W1 only, into a table with no key or index."""

    def __init__(self, sizes: Sizes, schema: str, bare: bool = False) -> None:
        super().__init__(sizes, schema)
        self.bare = bare
        self.rows = _Rows(self)
        self.conn: psycopg.Connection[Any] | None = None
        self.ids: dict[str, str] = {}
        self.streams: list[str] = []
        self.writer_conns: list[psycopg.Connection[Any]] = []

    def connect(self) -> psycopg.Connection[Any]:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}"
        return psycopg.connect(url, autocommit=True)

    def fresh_db(self) -> psycopg.Connection[Any]:
        if self.conn is not None:
            self.conn.close()
        create_schema(self.schema)
        self.conn = self.connect()
        self.conn.execute((_POSTGRES_BARE_DDL if self.bare else _POSTGRES_DDL).encode())
        return self.conn

    def row(self, stream_id: str, version: int) -> tuple[Any, ...]:
        return (stream_id, version, uuid.uuid4(), _TYPE, self.rows.payload(version), _METADATA)

    def append(
        self,
        conn: psycopg.Connection[Any],
        stream_id: str,
        start: int,
        count: int,
        snap: bool = False,
    ) -> None:
        if count == 1 and not snap:  # one autocommitted statement: one round trip
            conn.execute(_POSTGRES_INSERT, self.row(stream_id, start + 1))
            return
        with conn.transaction(), conn.cursor() as cursor:
            if snap:
                cursor.execute(
                    "INSERT INTO snapshots VALUES (%s, %s, 'Cart', 1, 0, 0, %s)",
                    (stream_id, start + count, self.rows.state),
                )
            cursor.executemany(
                _POSTGRES_INSERT,
                [self.row(stream_id, v) for v in range(start + 1, start + count + 1)],
            )

    def build(self, stream_id: str, length: int, save: int, snapshots: bool = False) -> str:
        conn = self.conn
        assert conn is not None
        for start in range(0, length, save):
            count = min(save, length - start)
            snap = snapshots and (start + count) % self.sizes.snapshot_every == 0
            self.append(conn, stream_id, start, count, snap)
        return stream_id

    def setup(self, group: str) -> dict[str, str]:
        if self.bare and group != "W1":
            raise Unavailable("the bare table is W1's floor only")
        self.fresh_db()
        sizes = self.sizes
        if group == "W3":
            for n in sizes.w3_lengths:
                self.ids[f"W3-{n}"] = self.build(str(uuid.uuid4()), n, 1000)
        elif group == "W4":
            every = sizes.snapshot_every
            self.ids["W4-head"] = self.build(str(uuid.uuid4()), sizes.w4_length, every, True)
            self.ids["W4-99"] = self.build(
                str(uuid.uuid4()), sizes.w4_length + every - 1, every, True
            )
        elif group in ("W5", "W6"):
            for _ in range(self.log_length(group) // sizes.save_size):
                self.build(str(uuid.uuid4()), sizes.save_size, sizes.save_size)
            self.conn_or_db().execute(_TOTALS)
            self.conn_or_db().execute(_CHECKPOINTS)
        return {}

    def conn_or_db(self) -> psycopg.Connection[Any]:
        assert self.conn is not None
        return self.conn

    def prepare(self, case: str) -> None:
        if case == "W6":
            assert self.conn is not None
            with self.conn.transaction():
                for statement in _RESET:
                    self.conn.execute(statement)
        if case in ("W1", "W2", "W2-snap", "W7"):
            conn = self.fresh_db()
        if case == "W7":
            self.streams = [str(uuid.uuid4()) for _ in range(self.sizes.w7_writers)]
            for stream_id in self.streams:
                self.append(conn, stream_id, 0, 1)
            for writer in self.writer_conns:
                writer.close()
            self.writer_conns = [self.connect() for _ in self.streams]

    def run(self, case: str) -> int:
        conn = self.conn
        assert conn is not None
        sizes = self.sizes
        if case == "W1":
            for _ in range(sizes.w1_aggregates):
                self.append(conn, str(uuid.uuid4()), 0, 1)
            return sizes.w1_aggregates
        if case in ("W2", "W2-snap"):
            self.build(str(uuid.uuid4()), sizes.w2_events, sizes.save_size, case == "W2-snap")
            return sizes.w2_events
        if case.startswith("W3-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                rows = conn.execute(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = %s ORDER BY version",
                    (self.ids[case],),
                    binary=True,
                ).fetchall()
                count = _decoded(rows, 4)
            assert count == int(case[3:])
            return loads
        if case.startswith("W4-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                found = conn.execute(
                    "SELECT state, version FROM snapshots WHERE stream_id = %s"
                    " ORDER BY version DESC LIMIT 1",
                    (self.ids[case],),
                    binary=True,
                ).fetchone()
                assert found is not None
                _DECODE_STATE(found[0])
                rows = conn.execute(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = %s AND version > %s"
                    " ORDER BY version",
                    (self.ids[case], found[1]),
                    binary=True,
                ).fetchall()
                _decoded(rows, 4)
            return loads
        if case == "W5":
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events ORDER BY transaction_id, position", binary=True
            ).fetchall()
            count = _decoded(rows, 7)
            assert count == sizes.w5_events
            return count
        if case == "W6":
            count = self.project(conn)
            assert count == sizes.w6_events, count
            return count
        if case == "W7":

            def write(conn: psycopg.Connection[Any], stream_id: str) -> None:
                for version in range(1, sizes.w7_saves + 1):
                    self.append(conn, stream_id, version, 1)

            _threads(write, list(zip(self.writer_conns, self.streams, strict=True)))
            return len(self.streams) * sizes.w7_saves
        raise ValueError(case)

    def project(self, conn: psycopg.Connection[Any]) -> int:
        """Catch up: a page of rows, then their upserts and the checkpoint in one transaction."""
        decode, upsert, checkpoint = (
            msgspec.json.decode,
            _UPSERT.format("%s"),
            _CHECKPOINT.format("%s"),
        )
        count, after = 0, (0, 0)
        while True:
            rows = conn.execute(_PAGE, (*after, _BATCH)).fetchall()
            if not rows:
                return count
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(upsert, [(s, decode(d)["quantity"]) for _, _, s, d in rows])
                after = (rows[-1][0], rows[-1][1])
                cursor.execute(checkpoint, after)
            count += len(rows)

    def close(self) -> None:
        for conn in [*self.writer_conns, self.conn]:
            if conn is not None:
                conn.close()
        drop_schema(self.schema)
        self.remove_folder()


class RawPsycopgAsync(AsyncWorkloads):
    """psycopg 3's AsyncConnection, autocommitted as :class:`RawPsycopg`."""

    def __init__(self, sizes: Sizes, schema: str, bare: bool = False) -> None:
        super().__init__(sizes, schema)
        self.bare = bare
        self.rows = _Rows(self)
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.ids: dict[str, str] = {}
        self.streams: list[str] = []
        self.writer_conns: list[psycopg.AsyncConnection[Any]] = []

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}", autocommit=True
        )

    async def fresh_db(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is not None:
            await self.conn.close()
        create_schema(self.schema)
        self.conn = await self.connect()
        await self.conn.execute((_POSTGRES_BARE_DDL if self.bare else _POSTGRES_DDL).encode())
        return self.conn

    def row(self, stream_id: str, version: int) -> tuple[Any, ...]:
        return (stream_id, version, uuid.uuid4(), _TYPE, self.rows.payload(version), _METADATA)

    async def append(
        self,
        conn: psycopg.AsyncConnection[Any],
        stream_id: str,
        start: int,
        count: int,
        snap: bool = False,
    ) -> None:
        if count == 1 and not snap:  # one autocommitted statement: one round trip
            await conn.execute(_POSTGRES_INSERT, self.row(stream_id, start + 1))
            return
        async with conn.transaction(), conn.cursor() as cursor:
            if snap:
                await cursor.execute(
                    "INSERT INTO snapshots VALUES (%s, %s, 'Cart', 1, 0, 0, %s)",
                    (stream_id, start + count, self.rows.state),
                )
            await cursor.executemany(
                _POSTGRES_INSERT,
                [self.row(stream_id, v) for v in range(start + 1, start + count + 1)],
            )

    async def build(self, stream_id: str, length: int, save: int, snapshots: bool = False) -> str:
        conn = self.conn
        assert conn is not None
        for start in range(0, length, save):
            count = min(save, length - start)
            snap = snapshots and (start + count) % self.sizes.snapshot_every == 0
            await self.append(conn, stream_id, start, count, snap)
        return stream_id

    async def setup(self, group: str) -> dict[str, str]:
        if self.bare and group != "W1":
            raise Unavailable("the bare table is W1's floor only")
        await self.fresh_db()
        sizes = self.sizes
        if group == "W3":
            for n in sizes.w3_lengths:
                self.ids[f"W3-{n}"] = await self.build(str(uuid.uuid4()), n, 1000)
        elif group == "W4":
            every = sizes.snapshot_every
            self.ids["W4-head"] = await self.build(str(uuid.uuid4()), sizes.w4_length, every, True)
            self.ids["W4-99"] = await self.build(
                str(uuid.uuid4()), sizes.w4_length + every - 1, every, True
            )
        elif group in ("W5", "W6"):
            for _ in range(self.log_length(group) // sizes.save_size):
                await self.build(str(uuid.uuid4()), sizes.save_size, sizes.save_size)
            assert self.conn is not None
            await self.conn.execute(_TOTALS)
            await self.conn.execute(_CHECKPOINTS)
        return {}

    async def prepare(self, case: str) -> None:
        if case == "W6":
            assert self.conn is not None
            async with self.conn.transaction():
                for statement in _RESET:
                    await self.conn.execute(statement)
        if case in ("W1", "W2", "W2-snap", "W7"):
            conn = await self.fresh_db()
        if case == "W7":
            self.streams = [str(uuid.uuid4()) for _ in range(self.sizes.w7_writers)]
            for stream_id in self.streams:
                await self.append(conn, stream_id, 0, 1)
            for writer in self.writer_conns:
                await writer.close()
            self.writer_conns = [await self.connect() for _ in self.streams]

    async def run(self, case: str) -> int:
        conn = self.conn
        assert conn is not None
        sizes = self.sizes
        if case == "W1":
            for _ in range(sizes.w1_aggregates):
                await self.append(conn, str(uuid.uuid4()), 0, 1)
            return sizes.w1_aggregates
        if case in ("W2", "W2-snap"):
            await self.build(str(uuid.uuid4()), sizes.w2_events, sizes.save_size, case == "W2-snap")
            return sizes.w2_events
        if case.startswith("W3-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                cursor = await conn.execute(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = %s ORDER BY version",
                    (self.ids[case],),
                    binary=True,
                )
                count = _decoded(await cursor.fetchall(), 4)
            assert count == int(case[3:])
            return loads
        if case.startswith("W4-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                cursor = await conn.execute(
                    "SELECT state, version FROM snapshots WHERE stream_id = %s"
                    " ORDER BY version DESC LIMIT 1",
                    (self.ids[case],),
                    binary=True,
                )
                found = await cursor.fetchone()
                assert found is not None
                _DECODE_STATE(found[0])
                cursor = await conn.execute(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = %s AND version > %s"
                    " ORDER BY version",
                    (self.ids[case], found[1]),
                    binary=True,
                )
                _decoded(await cursor.fetchall(), 4)
            return loads
        if case == "W5":
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM events ORDER BY transaction_id, position", binary=True
            )
            count = _decoded(await cursor.fetchall(), 7)
            assert count == sizes.w5_events
            return count
        if case == "W6":
            count = await self.project(conn)
            assert count == sizes.w6_events, count
            return count
        if case == "W7":

            async def write(conn: psycopg.AsyncConnection[Any], stream_id: str) -> None:
                for version in range(1, sizes.w7_saves + 1):
                    await self.append(conn, stream_id, version, 1)

            pairs = zip(self.writer_conns, self.streams, strict=True)
            await asyncio.gather(*(write(conn, stream_id) for conn, stream_id in pairs))
            return len(self.streams) * sizes.w7_saves
        raise ValueError(case)

    async def project(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Catch up: a page of rows, then their upserts and the checkpoint in one transaction."""
        decode, upsert, checkpoint = (
            msgspec.json.decode,
            _UPSERT.format("%s"),
            _CHECKPOINT.format("%s"),
        )
        count, after = 0, (0, 0)
        while True:
            cursor = await conn.execute(_PAGE, (*after, _BATCH))
            rows = await cursor.fetchall()
            if not rows:
                return count
            async with conn.transaction(), conn.cursor() as writer:
                await writer.executemany(
                    upsert, [(s, decode(d)["quantity"]) for _, _, s, d in rows]
                )
                after = (rows[-1][0], rows[-1][1])
                await writer.execute(checkpoint, after)
            count += len(rows)

    async def close(self) -> None:
        for conn in [*self.writer_conns, self.conn]:
            if conn is not None:
                await conn.close()
        drop_schema(self.schema)
        self.remove_folder()
