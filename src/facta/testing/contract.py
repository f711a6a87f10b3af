# WARNING: generated from src/facta/testing/contract_async.py by tools/gen_sync.py; do not edit.
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

from facta.testing._appending import AppendContract
from facta.testing._bad_input import BadInputContract
from facta.testing._inline import InlineContract
from facta.testing._lifecycle import LifecycleContract
from facta.testing._modelling import ModelContract
from facta.testing._projecting import ProjectionContract
from facta.testing._racing import RaceContract
from facta.testing._reading import ReadContract
from facta.testing._stream_types import StreamTypeContract
from facta.testing._subscribing import SubscriptionContract

__all__ = ["EventStoreContract"]


class EventStoreContract(
    AppendContract,
    ReadContract,
    StreamTypeContract,
    LifecycleContract,
    BadInputContract,
    RaceContract,
    ProjectionContract,
    InlineContract,
    SubscriptionContract,
    ModelContract,
):
    """The whole contract. Subclass it under a ``Test`` name and provide the store fixture."""
