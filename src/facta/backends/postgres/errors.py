"""The PostgreSQL backend's own error: a pool that had no connection to give in time."""

from __future__ import annotations

from facta.errors import StoreError

__all__ = ["PoolExhausted"]


class PoolExhausted(StoreError):
    """No pooled connection became free in time; the message names the pool's size and timeout."""
