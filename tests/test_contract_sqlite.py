"""The SQLite store passes the event store contract, sync and async.

The sync suite shares one database file between all its tests, as a server database may be
shared; the async suite gives each test a fresh file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import facta
from facta.testing import AsyncEventStoreContract, EventStoreContract


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[facta.EventStore]:
    """One SQLite store for every test of the sync suite."""
    path = tmp_path_factory.mktemp("sqlite") / "shared.db"
    with facta.connect(f"sqlite:///{path}") as store:
        yield store


class TestSQLiteStore(EventStoreContract):
    @pytest.fixture
    def store(self, shared_store: facta.EventStore) -> facta.EventStore:
        return shared_store


class TestAsyncSQLiteStore(AsyncEventStoreContract):
    @pytest.fixture
    async def async_store(self, tmp_path: Path) -> AsyncIterator[facta.AsyncEventStore]:
        async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}") as store:
            yield store
