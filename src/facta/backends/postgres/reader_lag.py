"""How far the global log's readers trail the writers on PostgreSQL, and who holds them back."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

__all__ = ["ReaderLag"]


class ReaderLag(NamedTuple):
    """How far ``read_all`` trails the events already committed, and who holds it back.

    ``read_all`` only returns events of transactions older than every transaction still open
    in the store's database (and any it cannot place in another one), so one long transaction
    delays readers (never writers). ``held_back`` is the number of committed events readers
    cannot see yet. The ``oldest_transaction_*`` fields describe the open transaction that
    holds them back: its server process, its database and how long it has been open (a
    prepared transaction has no process; each is None when unknown, or the age when the role
    may not see it). ``str()`` says it in one line.
    """

    held_back: int
    oldest_transaction_pid: int | None
    oldest_transaction_age: timedelta | None
    oldest_transaction_database: str | None = None

    def __str__(self) -> str:
        if self.held_back <= 0:
            return "readers of the global log are not held back"
        plural = "s are" if self.held_back != 1 else " is"
        pid, database = self.oldest_transaction_pid, self.oldest_transaction_database
        age = self.oldest_transaction_age
        opened = "" if age is None else f", open for {age.total_seconds():.1f} s,"
        place = "" if database is None else f" in database {database!r}"
        if pid is not None:
            who = f"the transaction of server process {pid}{place}{opened} must end first"
        elif database is not None:
            who = f"a prepared transaction{place}{opened} must be committed or rolled back first"
        else:
            who = "an older transaction must end first"
        return f"{self.held_back} committed event{plural} not readable yet: {who}"
