"""The caller's connection an append joins (``store.append(..., connection=conn)``).

An append in the caller's transaction first checks, without any I/O, that the connection can
host it: the psycopg kind of this store (sync or async), and a transaction open on it (or
autocommit off, where the append's first statement begins one). The recorder then checks that
it is to the store's database, and reads the transaction's id (see ``Caller``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from facta.errors import UnusableConnection

__all__ = ["Caller", "joinable"]


class Caller(NamedTuple):
    """The caller's transaction an append joins: its id, if it has one yet."""

    transaction_id: int | None


def joinable(connection: object, location: str) -> AsyncConnection[Any]:
    """The caller's connection, if an append can join its transaction (no I/O)."""
    kind = AsyncConnection.__name__
    if not isinstance(connection, AsyncConnection):
        raise UnusableConnection(
            f"connection= on the PostgreSQL store at {location} takes a psycopg {kind} (this "
            f"store's kind), got {type(connection).__module__}.{type(connection).__qualname__}; "
            "nothing was written"
        )
    status = connection.info.transaction_status
    if status == TransactionStatus.IDLE and connection.autocommit:
        raise UnusableConnection(
            "connection= is in autocommit mode with no transaction open, so the append would "
            "commit on its own; nothing was written. Append inside the caller's transaction "
            "(`with conn.transaction():`, or a connection with autocommit off)"
        )
    if status == TransactionStatus.INERROR:
        raise UnusableConnection(
            "the transaction on connection= has failed (a statement in it raised); nothing was "
            "written. Roll it back, then run the transaction again"
        )
    if status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS):
        state = "closed or broken" if connection.closed or connection.broken else status.name
        raise UnusableConnection(
            f"connection= cannot run a statement now ({state}); nothing was written"
        )
    return connection
