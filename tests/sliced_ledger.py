"""A projection that notices an event applied twice or skipped: the sliced workers' tests.

Each stream's row keeps the last version applied; an event that is not exactly that version
plus one is recorded in ``<name>_problems`` (a duplicate, a gap or a reordering) instead of
failing, so that a test can look at every problem at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

import facta
from facta.projections import Projection, handles


@facta.event("test.sliced.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


class Ledger(Projection[psycopg.Connection[Any]]):
    """Per stream: the last version applied, how many events and their total amount."""

    def __init__(self, name: str = "ledger") -> None:
        self.name = name
        self.streams = sql.Identifier(f"{name}_streams")
        self.problems = sql.Identifier(f"{name}_problems")

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream_id text PRIMARY KEY, version bigint,"
                " events bigint, total bigint)"
            ).format(self.streams)
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream_id text, version bigint, previous bigint)"
            ).format(self.problems)
        )

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(sql.SQL("TRUNCATE {}, {}").format(self.streams, self.problems))

    @handles(Deposited)
    def deposited(
        self, event: facta.RecordedEvent[Deposited], conn: psycopg.Connection[Any]
    ) -> None:
        cur = conn.execute(
            sql.SQL("SELECT version FROM {} WHERE stream_id = %s").format(self.streams),
            (event.stream_id,),
        )
        row = cur.fetchone()
        previous = 0 if row is None else int(row[0])
        if event.version != previous + 1:
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(self.problems),
                (event.stream_id, event.version, previous),
            )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} AS t VALUES (%s, %s, 1, %s) ON CONFLICT (stream_id) DO UPDATE"
                " SET version = excluded.version, events = t.events + 1,"
                " total = t.total + excluded.total"
            ).format(self.streams),
            (event.stream_id, event.version, event.data.amount),
        )


def contents(
    url: str, schema: str, name: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The ledger's rows (by stream) and its problems."""
    with psycopg.connect(url, autocommit=True) as conn:
        streams = conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY stream_id").format(
                sql.Identifier(schema, f"{name}_streams")
            )
        ).fetchall()
        problems = conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY stream_id, version").format(
                sql.Identifier(schema, f"{name}_problems")
            )
        ).fetchall()
    return streams, problems
