"""The PostgreSQL backend's own errors: a pool with no connection to give, a lock not granted."""

from __future__ import annotations

from facta.errors import StoreError

__all__ = ["LockTimeout", "PoolExhausted"]


class PoolExhausted(StoreError):
    """No pooled connection became free in time; the message names the pool's size and timeout."""


class LockTimeout(StoreError):
    """A statement waited longer than ``lock_timeout`` for a lock another session holds
    (an append: for one of its streams); nothing was written. The message names the streams
    and the timeout."""
