"""The keyword options of a PostgreSQL store, as ``facta.connect`` passes them on.

What each one means is in :mod:`facta.backends.postgres`; ``Settings.parse`` checks the values
and holds the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

__all__ = ["Options"]


class Options(TypedDict, total=False):
    """The options of a PostgreSQL store (values are checked when the store is made)."""

    schema: str | None
    pool_size: int
    pool_timeout: float
    lock_timeout: float | None
    migrate: bool | None
    create: bool | None
    read_only: bool
    replicas: Sequence[str]
    replica_timeout: float
    replica_fallback: bool
    commit_lsn: bool
