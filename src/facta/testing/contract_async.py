"""The event store contract suite: the behaviour every backend must show, sync and async.

A backend's test module subclasses the suite and provides the store under test as a fixture,
``store`` for the sync suite and ``async_store`` for the async one::

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        def store(self) -> Iterator[EventStore]:
            with MyStore(...) as store:
                yield store

The tests never assume the store is empty: they write to fresh stream ids, measure the global
log from a checkpoint taken when they start and give each projection a name of its own, so
one database may serve every test, as long as nothing else writes to it while a test runs.
The async suite also runs inboxes (``facta.publishing.Inbox``) on the store, fed by a source
that lives in the test.
Inline projections the tests add stay on the store; they only read the ``Projected`` events
of their own test's streams.
"""

from __future__ import annotations

import pytest  # sync: drop

from facta.store_async import AsyncEventStore  # sync: drop
from facta.testing._appending_async import AsyncAppendContract
from facta.testing._bad_input_async import AsyncBadInputContract
from facta.testing._inboxes import AsyncInboxContract  # sync: drop
from facta.testing._inline_async import AsyncInlineContract
from facta.testing._lifecycle_async import AsyncLifecycleContract
from facta.testing._modelling_async import AsyncModelContract
from facta.testing._projecting_async import AsyncProjectionContract
from facta.testing._racing_async import AsyncRaceContract
from facta.testing._reading_async import AsyncReadContract
from facta.testing._stream_types_async import AsyncStreamTypeContract
from facta.testing._subscribing_async import AsyncSubscriptionContract

__all__ = ["AsyncEventStoreContract"]


class AsyncEventStoreContract(
    AsyncAppendContract,
    AsyncReadContract,
    AsyncStreamTypeContract,
    AsyncLifecycleContract,
    AsyncBadInputContract,
    AsyncRaceContract,
    AsyncProjectionContract,
    AsyncInlineContract,
    AsyncSubscriptionContract,
    AsyncInboxContract,  # sync: drop
    AsyncModelContract,
):
    """The whole contract. Subclass it under a ``Test`` name and provide the store fixture."""

    pytestmark = pytest.mark.asyncio  # sync: drop

    @pytest.fixture  # sync: drop
    def store(self, async_store: AsyncEventStore) -> AsyncEventStore:  # sync: drop
        """The store under test, under the name the sync suite uses too."""  # sync: drop
        return async_store  # sync: drop
