"""Whether a pooled connection died while it sat idle in the pool, told without a round trip.

The server writes to an idle session only to end it: an administrator's
``pg_terminate_backend``, a shutdown or a crash sends an error and closes the socket. So a
pooled connection whose socket has something to read is dead (or as good as dead), and the
check costs one ``poll`` system call, not a query: cheap enough for every checkout.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg

__all__ = ["dead_while_idle"]


def dead_while_idle(conn: Any) -> bool:
    """True if the idle connection ``conn`` (a psycopg connection) cannot be used."""
    if conn.closed:
        return True
    try:
        return _readable(conn.pgconn.socket)
    except (OSError, ValueError, psycopg.Error):  # no socket any more
        return True


def _readable(fd: int) -> bool:
    if _HAS_POLL:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))  # POLLIN, or POLLHUP / POLLERR: the end of the session
    readable, _, _ = select.select([fd], [], [], 0)  # Windows: no poll, sockets only
    return bool(readable)


_HAS_POLL = hasattr(select, "poll")
