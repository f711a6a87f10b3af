"""The in-memory store passes the event store contract, sync and async."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import facta
from facta.testing import AsyncEventStoreContract, EventStoreContract


class TestMemoryStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[facta.EventStore]:
        with facta.connect("memory://") as store:
            yield store


class TestAsyncMemoryStore(AsyncEventStoreContract):
    @pytest.fixture
    async def async_store(self) -> AsyncIterator[facta.AsyncEventStore]:
        async with facta.connect_async("memory://") as store:
            yield store
