"""The raw asyncpg driver, beside psycopg: the same rows, tables and work as ``raw_systems``.

asyncpg speaks PostgreSQL's binary protocol with prepared statements cached per connection,
and often does a round trip or a decode with less Python than psycopg. It is shown beside the
psycopg baselines so a reader sees what a second driver could gain; the goals keep comparing
facta (which runs on psycopg) against psycopg. Every connection is autocommitted (asyncpg's
default): a single-event save is one INSERT, one round trip; a save of several is
``executemany`` in a transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; bench-only
import msgspec

from bench.model import POSTGRES_URL, Sizes
from bench.raw_systems import (
    _BATCH,
    _CHECKPOINTS,
    _COLUMNS,
    _DECODE_STATE,
    _METADATA,
    _POSTGRES_DDL,
    _REPLAY,
    _RESET,
    _TOTALS,
    _TYPE,
    _decoded,
    _Rows,
)
from bench.workloads import AsyncWorkloads, create_schema, drop_schema

_INSERT = (
    "INSERT INTO events (transaction_id, stream_id, version, event_id, type, schema_version,"
    " encoding, data, metadata) VALUES (pg_current_xact_id()::text::bigint, $1, $2, $3, $4,"
    " 1, 0, $5, $6)"
)
_PAGE = (
    "SELECT transaction_id, position, stream_id, data FROM events"
    " WHERE (transaction_id, position) > ($1, $2) ORDER BY transaction_id, position LIMIT $3"
)
_UPSERT = (
    "INSERT INTO cart_totals VALUES ($1, 1, $2) ON CONFLICT (cart_id) DO UPDATE SET"
    " items = cart_totals.items + 1, quantity = cart_totals.quantity + excluded.quantity"
)
_CHECKPOINT = "UPDATE checkpoints SET transaction_id = $1, position = $2 WHERE name = 'totals'"


class RawAsyncpg(AsyncWorkloads):
    """asyncpg, one autocommitted connection (one per writer in W7)."""

    def __init__(self, sizes: Sizes, schema: str) -> None:
        super().__init__(sizes, schema)
        self.rows = _Rows(self)
        self.conn: Any = None  # asyncpg.Connection (asyncpg ships no type information)
        self.ids: dict[str, str] = {}
        self.streams: list[str] = []
        self.writer_conns: list[Any] = []

    async def connect(self) -> Any:
        return await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": self.schema})

    async def fresh_db(self) -> Any:
        if self.conn is not None:
            await self.conn.close()
        create_schema(self.schema)
        self.conn = await self.connect()
        await self.conn.execute(_POSTGRES_DDL)
        return self.conn

    def row(self, stream_id: str, version: int) -> tuple[Any, ...]:
        return (stream_id, version, uuid.uuid4(), _TYPE, self.rows.payload(version), _METADATA)

    async def append(
        self, conn: Any, stream_id: str, start: int, count: int, snap: bool = False
    ) -> None:
        if count == 1 and not snap:  # one autocommitted statement: one round trip
            await conn.execute(_INSERT, *self.row(stream_id, start + 1))
            return
        async with conn.transaction():
            if snap:
                await conn.execute(
                    "INSERT INTO snapshots VALUES ($1, $2, 'Cart', 1, 0, 0, $3)",
                    stream_id,
                    start + count,
                    self.rows.state,
                )
            await conn.executemany(
                _INSERT, [self.row(stream_id, v) for v in range(start + 1, start + count + 1)]
            )

    async def build(self, stream_id: str, length: int, save: int, snapshots: bool = False) -> str:
        for start in range(0, length, save):
            count = min(save, length - start)
            snap = snapshots and (start + count) % self.sizes.snapshot_every == 0
            await self.append(self.conn, stream_id, start, count, snap)
        return stream_id

    async def setup(self, group: str) -> dict[str, str]:
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
            await self.conn.execute(_TOTALS)
            await self.conn.execute(_CHECKPOINTS)
        return {}

    async def prepare(self, case: str) -> None:
        if case == "W6":
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
        conn, sizes = self.conn, self.sizes
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
                rows = await conn.fetch(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = $1 ORDER BY version",
                    self.ids[case],
                )
                count = _decoded(rows, 4)
            assert count == int(case[3:])
            return loads
        if case.startswith("W4-"):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                found = await conn.fetchrow(
                    "SELECT state, version FROM snapshots WHERE stream_id = $1"
                    " ORDER BY version DESC LIMIT 1",
                    self.ids[case],
                )
                _DECODE_STATE(found[0])
                rows = await conn.fetch(
                    f"SELECT {_REPLAY} FROM events WHERE stream_id = $1 AND version > $2"
                    " ORDER BY version",
                    self.ids[case],
                    found[1],
                )
                _decoded(rows, 4)
            return loads
        if case == "W5":
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM events ORDER BY transaction_id, position"
            )
            count = _decoded(rows, 7)
            assert count == sizes.w5_events
            return count
        if case == "W6":
            count = await self.project(conn)
            assert count == sizes.w6_events, count
            return count
        if case == "W7":

            async def write(conn: Any, stream_id: str) -> None:
                for version in range(1, sizes.w7_saves + 1):
                    await self.append(conn, stream_id, version, 1)

            pairs = zip(self.writer_conns, self.streams, strict=True)
            await asyncio.gather(*(write(conn, stream_id) for conn, stream_id in pairs))
            return len(self.streams) * sizes.w7_saves
        raise ValueError(case)

    async def project(self, conn: Any) -> int:
        """Catch up: a page of rows, then their upserts and the checkpoint in one transaction."""
        decode = msgspec.json.decode
        count, after = 0, (0, 0)
        while True:
            rows = await conn.fetch(_PAGE, *after, _BATCH)
            if not rows:
                return count
            async with conn.transaction():
                await conn.executemany(_UPSERT, [(s, decode(d)["quantity"]) for _, _, s, d in rows])
                after = (rows[-1][0], rows[-1][1])
                await conn.execute(_CHECKPOINT, *after)
            count += len(rows)

    async def close(self) -> None:
        for conn in [*self.writer_conns, self.conn]:
            if conn is not None:
                await conn.close()
        drop_schema(self.schema)
        self.remove_folder()
