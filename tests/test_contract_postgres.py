"""The PostgreSQL store passes the event store contract, sync and async, on the real server.

Each suite shares one fresh schema between its tests, as a production database is shared;
the schema is dropped when the module is done.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from facta.backends.postgres import PostgresEventStore
from facta.backends.postgres_async import AsyncPostgresEventStore
from facta.testing import AsyncEventStoreContract, EventStoreContract

pytestmark = pytest.mark.postgres

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


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
    with PostgresEventStore(POSTGRES_URL, schema=schema, pool_size=4) as store:
        yield store


class TestPostgresStore(EventStoreContract):
    @pytest.fixture
    def store(self, shared_store: PostgresEventStore) -> PostgresEventStore:
        return shared_store


class TestAsyncPostgresStore(AsyncEventStoreContract):
    @pytest.fixture
    async def async_store(self, schema: str) -> AsyncIterator[AsyncPostgresEventStore]:
        async with AsyncPostgresEventStore(POSTGRES_URL, schema=schema, pool_size=4) as store:
            yield store
