"""Fixtures shared by the test-suite: one store per backend, PostgreSQL in a private schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import facta

# The PostgreSQL server every PostgreSQL test uses; FACTA_TEST_POSTGRES_URL points the tests
# elsewhere (the library itself never reads the environment).
POSTGRES_URL = os.environ.get(
    "FACTA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# How long a read waits for other sessions' transactions to end on a shared server.
PATIENCE = 60.0
BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's URL (``FACTA_TEST_POSTGRES_URL`` overrides it)."""
    return POSTGRES_URL


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped (with everything in it) after the test."""
    import psycopg

    name = f"facta_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def store_url(backend: str, tmp_path: Path, pg_schema: str) -> str:
    """The URL of an empty store of the given backend."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return f"{POSTGRES_URL}?schema={pg_schema}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend's name in turn."""
    name: str = request.param
    if name == "postgres":
        request.getfixturevalue("pg_schema")
    return name


@pytest.fixture
def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty store, once per backend."""
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else ""
    return store_url(backend, tmp_path, schema)


@pytest.fixture
def store(url: str) -> Iterator[facta.EventStore]:
    """An empty sync store, once per backend."""
    with facta.connect(url) as opened:
        yield opened


@pytest.fixture
async def async_store(url: str) -> AsyncIterator[facta.AsyncEventStore]:
    """An empty async store, once per backend."""
    async with facta.connect_async(url) as opened:
        yield opened


@pytest.fixture
def readable() -> Callable[[facta.EventStore], None]:
    """``readable(store)``: wait until the store's global log shows everything committed so
    far (PostgreSQL: other sessions' transactions hold it back; see settle_reads)."""
    return settle_reads


@pytest.fixture
def readable_async() -> Callable[[facta.AsyncEventStore], Awaitable[None]]:
    """``await readable_async(store)``: ``readable`` for an async store."""
    return settle_reads_async


def settle_reads(store: facta.EventStore) -> None:
    """Wait until ``read_all`` returns everything committed so far (PostgreSQL only).

    On PostgreSQL an event is readable once every older transaction of its database has
    ended, and other suites keep the shared server busy; the embedded backends are always
    settled.
    """
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None and not wait(PATIENCE):
        raise AssertionError(f"the global log was held back for more than {PATIENCE} s")


async def settle_reads_async(store: facta.AsyncEventStore) -> None:
    """``settle_reads`` for an async store."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None and not await wait(PATIENCE):
        raise AssertionError(f"the global log was held back for more than {PATIENCE} s")
