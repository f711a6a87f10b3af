"""The PostgreSQL store passes the event store contract, sync and async, on the real server.

Each suite shares one fresh schema between its tests, as a production database is shared;
the schema is dropped when the module is done.

The contract reads the global log right after writing to it. On PostgreSQL an event becomes
readable once every older transaction in the cluster has ended, and other sessions (other
test runs, benchmarks) keep the server busy; so the recorders under test first wait, through
``wait_until_readable``, for what was committed before each ``read_all`` page to be readable.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence

import psycopg
import pytest

import facta
from facta.backends.postgres.recorder import PostgresRecorder
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.events import Checkpoint
from facta.records import StoredEvent
from facta.testing import AsyncEventStoreContract, EventStoreContract

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds a read waits for other sessions' transactions to end


class ReadYourWritesRecorder(PostgresRecorder):
    def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        assert self.wait_until_readable(PATIENCE), self.reader_lag()
        return super().read_all(after, types, limit)


class AsyncReadYourWritesRecorder(AsyncPostgresRecorder):
    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        assert await self.wait_until_readable(PATIENCE), await self.reader_lag()
        return await super().read_all(after, types, limit)


@pytest.fixture(scope="module")
def schema(postgres_url: str) -> Iterator[str]:
    """A schema private to this module's run, dropped afterwards."""
    name = f"facta_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="module")
def shared_store(postgres_url: str, schema: str) -> Iterator[facta.EventStore]:
    """One sync store for every test of the sync suite."""
    recorder = ReadYourWritesRecorder(postgres_url, schema=schema, pool_size=4)
    with facta.EventStore(recorder) as store:
        yield store


class TestPostgresStore(EventStoreContract):
    @pytest.fixture
    def store(self, shared_store: facta.EventStore) -> facta.EventStore:
        return shared_store


class TestAsyncPostgresStore(AsyncEventStoreContract):
    @pytest.fixture
    async def async_store(
        self, postgres_url: str, schema: str
    ) -> AsyncIterator[facta.AsyncEventStore]:
        recorder = AsyncReadYourWritesRecorder(postgres_url, schema=schema, pool_size=4)
        async with facta.AsyncEventStore(recorder) as store:
            yield store
