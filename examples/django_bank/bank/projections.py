"""The balances read model, updated inside every append's transaction (an inline projection).

Its handlers write with the connection facta hands them, in the append's transaction: Django's
own, when the append is made through ``services`` (``connection=``). ``search_path`` then holds
facta's schema and ``public``, where Django keeps ``bank_balance``.
"""

from __future__ import annotations

from typing import Any

import psycopg

import facta
from facta.projections import Projection, handles

from .domain import AccountOpened, MoneyDeposited


class Balances(Projection[psycopg.Connection[Any]]):
    name = "django-bank-balances"

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM bank_balance")

    @handles(AccountOpened)
    def opened(
        self, event: facta.RecordedEvent[AccountOpened], conn: psycopg.Connection[Any]
    ) -> None:
        conn.execute(
            "INSERT INTO bank_balance (account_id, owner, balance) VALUES (%s, %s, 0)",
            (event.stream_id, event.data.owner),
        )

    @handles(MoneyDeposited)
    def deposited(
        self, event: facta.RecordedEvent[MoneyDeposited], conn: psycopg.Connection[Any]
    ) -> None:
        conn.execute(
            "UPDATE bank_balance SET balance = balance + %s WHERE account_id = %s",
            (event.data.amount, event.stream_id),
        )
