"""The balances read model: a table in the store's database, fed by a catch-up projection.

The same SQL runs on SQLite and PostgreSQL (written with PostgreSQL's ``%s``); ``_execute``
takes either database's connection, as the runner hands it to the handlers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import facta
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
    async with store.recorder.transaction() as conn:  # where the handlers write
        rows = await _execute(conn, "SELECT * FROM bank_balances ORDER BY account")
    return [Balance(*row) for row in rows]


async def balance(store: facta.AsyncEventStore, account: str) -> Balance | None:
    """One account's balance, or None while the projection has not seen it."""
    async with store.recorder.transaction() as conn:
        rows = await _execute(conn, "SELECT * FROM bank_balances WHERE account = %s", (account,))
    return Balance(*rows[0]) if rows else None


async def _change(conn: Any, account: str, amount: int) -> None:
    query = "UPDATE bank_balances SET balance = balance + %s WHERE account = %s"
    await _execute(conn, query, (amount, account))


async def _execute(conn: Any, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Run a statement on a SQLite or a psycopg (async) connection; its rows."""
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(query.replace("%s", "?"), params).fetchall()
    cursor = await conn.execute(query, params)
    return list(await cursor.fetchall()) if cursor.description else []
