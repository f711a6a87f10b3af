# WARNING: generated from src/facta/backends/postgres/replicas_async.py by tools/gen_sync.py; do not edit.
"""A PostgreSQL store's hot standbys: a connection pool each, read from in turn.

Reads that may be a little behind go to the next replica in round-robin order. A read that
must see a commit (``fresh=`` an append's result) goes to the first replica, in that order,
that has replayed the commit's WAL position, waiting up to ``replica_timeout`` for one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import (
    Callable,
    Sequence,
)
from typing import Any

from psycopg_pool import ConnectionPool

from facta.backends.postgres.queries import Queries
from facta.backends.postgres.replica_lag import ReplicaLag
from facta.errors import ReplicaBehind

__all__ = ["Replicas"]

# Runs one statement on a pooled connection of the given pool; its rows.
Rows = list[Any]
Query = Callable[[ConnectionPool[Any], str], Rows]
_POLL_SECONDS = 0.002  # how often a fresh read looks again at how far the replicas are


class Replicas:
    """The pools of a store's replicas, their locations (for messages) and whose turn it is."""

    def __init__(
        self,
        pools: Sequence[ConnectionPool[Any]],
        locations: Sequence[str],
        query: Query,
        sql: Queries,
    ) -> None:
        self.pools = list(pools)
        self._sql = sql
        self.locations = list(locations)
        self._query = query
        self._turns = itertools.count()

    def next(self) -> ConnectionPool[Any]:
        """The pool of the replica whose turn it is."""
        return self.pools[next(self._turns) % len(self.pools)]

    def open(self) -> None:
        """Open the pools; they connect in the background (a replica down is no reason to
        refuse the primary)."""
        for pool in self.pools:
            pool.open(wait=False)

    def close(self) -> None:
        for pool in self.pools:
            pool.close()

    def at(
        self, lsn: int, seconds: float, fallback: ConnectionPool[Any] | None
    ) -> ConnectionPool[Any]:
        """The pool of a replica that has replayed WAL position ``lsn``, waiting up to
        ``seconds`` for one; then ``fallback`` (the primary's) if given, else
        ``ReplicaBehind`` naming the replica furthest ahead."""
        first = next(self._turns)
        order = [(first + n) % len(self.pools) for n in range(len(self.pools))]
        deadline = time.monotonic() + seconds
        while True:
            furthest: tuple[int, int | None] = (order[0], None)
            for index in order:
                ((replayed,),) = self._query(self.pools[index], self._sql.replayed_lsn)
                if replayed is not None and replayed >= lsn:
                    return self.pools[index]
                if replayed is not None and (furthest[1] is None or replayed > furthest[1]):
                    furthest = (index, replayed)
            if time.monotonic() >= deadline:
                if fallback is not None:
                    return fallback
                raise ReplicaBehind(self.locations[furthest[0]], lsn, furthest[1], seconds)
            time.sleep(_POLL_SECONDS)

    def caught_up(self, lsn: int, seconds: float) -> bool:
        """Wait up to ``seconds`` until every replica has replayed WAL position ``lsn``;
        whether they have."""
        deadline = time.monotonic() + seconds
        waiting = list(self.pools)
        while waiting:
            ((replayed,),) = self._query(waiting[0], self._sql.replayed_lsn)
            if replayed is not None and replayed >= lsn:
                waiting.pop(0)
            elif time.monotonic() >= deadline:
                return False
            else:
                time.sleep(_POLL_SECONDS)
        return True

    def lag(self, primary_lsn: int) -> list[ReplicaLag]:
        """How far each replica trails the primary, which had written up to ``primary_lsn``."""
        found = []
        for pool, location in zip(self.pools, self.locations, strict=True):
            ((replayed, _received, age),) = self._query(pool, self._sql.replica_lag)
            behind = 0 if replayed is None else max(0, primary_lsn - replayed)
            seconds = None if age is None else (max(0.0, age) if behind else 0.0)
            found.append(ReplicaLag(location, behind, seconds, replayed))
        return found
