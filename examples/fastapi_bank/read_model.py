"""The balances read model: a table in the store's database, fed by a catch-up projection.

The same SQL runs on SQLite and PostgreSQL (written with PostgreSQL's ``%s``); ``_execute``
takes either database's connection, as the runner hands it to the handlers and as
``_reading`` opens one for the queries.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import facta
from facta.backends.sqlite.recorder_async import AsyncSQLiteRecorder
from facta.projections import AsyncProjection, handles

from .domain import AccountOpened, MoneyDeposited, MoneyWithdrawn


@dataclass(frozen=True)
class Balance:
    account: str
    owner: str
    balance: int


class Balances(AsyncProjection[Any]):
    """Every account's owner and balance, in the table ``bank_balances``."""

    name = "fastapi-bank-balances"

    async def setup(self, conn: Any) -> None:
        await _execute(
            conn,
            "CREATE TABLE IF NOT EXISTS bank_balances"
            " (account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL)",
        )

    async def reset(self, conn: Any) -> None:
        await _execute(conn, "DELETE FROM bank_balances")

    @handles(AccountOpened)
    async def opened(self, event: facta.RecordedEvent[AccountOpened], conn: Any) -> None:
        await _execute(
            conn,
            "INSERT INTO bank_balances VALUES (%s, %s, 0)",
            (event.stream_id, event.data.owner),
        )

    @handles(MoneyDeposited)
    async def deposited(self, event: facta.RecordedEvent[MoneyDeposited], conn: Any) -> None:
        await _change(conn, event.stream_id, event.data.amount)

    @handles(MoneyWithdrawn)
    async def withdrawn(self, event: facta.RecordedEvent[MoneyWithdrawn], conn: Any) -> None:
        await _change(conn, event.stream_id, -event.data.amount)


async def balances(store: facta.AsyncEventStore) -> list[Balance]:
    """Every balance, by account id."""
    async with _reading(store) as conn:
        rows = await _execute(conn, "SELECT * FROM bank_balances ORDER BY account")
    return [Balance(*row) for row in rows]


async def balance(store: facta.AsyncEventStore, account: str) -> Balance | None:
    """One account's balance, or None while the projection has not seen it."""
    async with _reading(store) as conn:
        rows = await _execute(conn, "SELECT * FROM bank_balances WHERE account = %s", (account,))
    return Balance(*rows[0]) if rows else None


@asynccontextmanager
async def _reading(store: facta.AsyncEventStore) -> AsyncIterator[Any]:
    """A connection to query the read model on.

    SQLite: a read-only connection of its own to the file (in WAL mode a reader never waits
    for a writer), never the store's, whose write transactions would hold up the runner.
    PostgreSQL: a pooled connection, ``search_path`` set to the store's schema.
    """
    recorder = store.recorder
    if isinstance(recorder, AsyncSQLiteRecorder):
        with closing(sqlite3.connect(_read_only(recorder.path), uri=True)) as db:
            yield db
    else:
        async with recorder.transaction() as conn:
            yield conn


def _read_only(path: str) -> str:
    """A read-only SQLite URI of the file at ``path``."""
    return PurePath(os.path.abspath(path)).as_uri() + "?mode=ro"


async def _change(conn: Any, account: str, amount: int) -> None:
    query = "UPDATE bank_balances SET balance = balance + %s WHERE account = %s"
    await _execute(conn, query, (amount, account))


async def _execute(conn: Any, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Run a statement on a SQLite or a psycopg (async) connection; its rows."""
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(query.replace("%s", "?"), params).fetchall()
    cursor = await conn.execute(query, params)
    return list(await cursor.fetchall()) if cursor.description else []
