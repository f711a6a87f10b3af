"""How far the global log's readers trail the writers on PostgreSQL, and who holds them back."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

__all__ = ["ReaderLag"]


class ReaderLag(NamedTuple):
    """How far ``read_all`` trails the events already committed, and who holds it back.

    ``read_all`` only returns events of transactions older than every transaction still open
    in the cluster, so one long transaction delays readers (never writers). ``held_back`` is
    the number of committed events readers cannot see yet; ``oldest_transaction_pid`` and
    ``oldest_transaction_age`` describe the oldest open transaction that has a transaction id
    (None when there is none, or the age when the role may not see it).
    """

    held_back: int
    oldest_transaction_pid: int | None
    oldest_transaction_age: timedelta | None
