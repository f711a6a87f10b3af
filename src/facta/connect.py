"""Open an event store from a URL: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``.

>>> with connect("memory://") as store:
...     store.stream_version("nothing-here")
0
"""

from __future__ import annotations

from facta.codec import Codec
from facta.errors import StoreError
from facta.store import EventStore
from facta.store_async import AsyncEventStore

__all__ = ["connect", "connect_async"]


def _scheme(url: str) -> tuple[str, str]:
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"event store URL must look like memory://, sqlite:///file.db or "
            f"postgresql://host/db, got {url!r}"
        )
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "postgres":
        scheme = "postgresql"
    if scheme not in ("memory", "sqlite", "postgresql"):
        raise ValueError(f"unknown event store scheme {scheme!r} in {url!r}")
    if scheme == "sqlite":
        # sqlite:///bank.db -> "bank.db"; sqlite:////tmp/bank.db -> "/tmp/bank.db"
        rest = rest[1:] if rest.startswith("/") else rest
        if not rest:
            raise ValueError(f"SQLite URL {url!r} names no file; use sqlite:///path/to/file.db")
    return scheme, rest


def _require_psycopg() -> None:
    import importlib.util

    if (
        importlib.util.find_spec("psycopg") is None
        or importlib.util.find_spec("psycopg_pool") is None
    ):
        raise StoreError(
            "the PostgreSQL backend needs psycopg and psycopg_pool: pip install 'facta[postgres]'"
        )


def connect(url: str, *, codec: Codec | None = None) -> EventStore:
    """A sync event store for ``url``; use it as a context manager."""
    scheme, rest = _scheme(url)
    if scheme == "memory":
        from facta.backends.memory import MemoryEventStore

        return MemoryEventStore(codec)
    if scheme == "sqlite":
        from facta.backends.sqlite import SQLiteEventStore

        return SQLiteEventStore(rest, codec)
    _require_psycopg()
    from facta.backends.postgres import PostgresEventStore

    return PostgresEventStore(url, codec)


def connect_async(url: str, *, codec: Codec | None = None) -> AsyncEventStore:
    """An async event store for ``url``; use it as an async context manager."""
    scheme, rest = _scheme(url)
    if scheme == "memory":
        from facta.backends.memory_async import AsyncMemoryEventStore

        return AsyncMemoryEventStore(codec)
    if scheme == "sqlite":
        from facta.backends.sqlite_async import AsyncSQLiteEventStore

        return AsyncSQLiteEventStore(rest, codec)
    _require_psycopg()
    from facta.backends.postgres_async import AsyncPostgresEventStore

    return AsyncPostgresEventStore(url, codec)
