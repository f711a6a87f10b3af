"""The PostgreSQL store passes the event store contract, sync and async, on the real server.

Each suite shares one fresh schema between its tests, as a production database is shared;
the schema is dropped when the module is done.

The contract reads the global log right after writing to it. On PostgreSQL an event becomes
readable once every older transaction in the cluster has ended, and other sessions (other
test runs, benchmarks) keep the server busy; so the stores under test first wait, through
``wait_until_readable``, for what was committed before each ``read_all`` to be readable.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from facta.backends.postgres import PostgresEventStore
from facta.backends.postgres_async import AsyncPostgresEventStore
from facta.events import RecordedEvent
from facta.testing import AsyncEventStoreContract, EventStoreContract

pytestmark = pytest.mark.postgres

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
PATIENCE = 30.0  # seconds a read waits for other sessions' transactions to end


class ReadYourWritesStore(PostgresEventStore):
    def read_all(self, *args: Any, **kwargs: Any) -> Iterator[RecordedEvent]:
        self.wait_until_readable(PATIENCE)
        return super().read_all(*args, **kwargs)


class AsyncReadYourWritesStore(AsyncPostgresEventStore):
    async def read_all(self, *args: Any, **kwargs: Any) -> AsyncIterator[RecordedEvent]:
        await self.wait_until_readable(PATIENCE)
        async for event in super().read_all(*args, **kwargs):
            yield event


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    """A schema private to this module's run, dropped afterwards."""
    name = f"facta_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="module")
def shared_store(schema: str) -> Iterator[PostgresEventStore]:
    """One sync store for every test of the sync suite."""
    with ReadYourWritesStore(POSTGRES_URL, schema=schema, pool_size=4) as store:
        yield store


class TestPostgresStore(EventStoreContract):
    @pytest.fixture
    def store(self, shared_store: PostgresEventStore) -> PostgresEventStore:
        return shared_store


class TestAsyncPostgresStore(AsyncEventStoreContract):
    @pytest.fixture
    async def async_store(self, schema: str) -> AsyncIterator[AsyncPostgresEventStore]:
        async with AsyncReadYourWritesStore(POSTGRES_URL, schema=schema, pool_size=4) as store:
            yield store
