"""A third-party backend, tests/toy_backend.py, installed the way a package installs one.

The fixture below writes the ``.dist-info`` folder a wheel would, naming the backend under the
``facta.backends`` entry points, and puts it on ``sys.path``: ``facta.connect("toy://")``
then finds the backend as it would find an installed package's. The toy backend passes the
whole contract suite, sync and async, runs projections and ``facta check``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import facta
from facta.backends import GROUP, schemes
from facta.projections import Projection, ProjectionRunner, add_inline, handles
from facta.testing import AsyncEventStoreContract, EventStoreContract

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``toy_backend`` as installed: its distribution's metadata names the entry point."""
    site = tmp_path_factory.mktemp("site")
    info = site / "toy_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[facta.backends]\ntoy = toy_backend:backend\n")
    added = [str(site)] + ([] if str(HERE) in sys.path else [str(HERE)])  # the module itself
    sys.path[:0] = added
    try:
        yield
    finally:
        for path in added:
            sys.path.remove(path)
        shutil.rmtree(info)


@pytest.fixture(scope="module")
def shared_store(installed: None) -> Iterator[facta.EventStore]:
    """One toy store for every test of the sync suite, as a database may be shared."""
    with facta.connect("toy://") as store:
        yield store


class TestToyStore(EventStoreContract):
    @pytest.fixture
    def store(self, shared_store: facta.EventStore) -> facta.EventStore:
        return shared_store


class TestAsyncToyStore(AsyncEventStoreContract):
    @pytest.fixture
    async def async_store(self) -> AsyncIterator[facta.AsyncEventStore]:
        async with facta.connect_async("toy://") as store:
            yield store


# -- the backend as an application sees it -------------------------------------------------


@facta.event("tests.toy.Deposited")
@dataclass(frozen=True)
class Deposited:
    account: str
    amount: int


class Balances(Projection[Any]):
    """A read model in a dict (the toy store has no database to keep one in)."""

    def __init__(self, name: str) -> None:
        self.name, self.balances = name, dict[str, int]()

    def reset(self, connection: Any) -> None:
        self.balances.clear()

    @handles(Deposited)
    def deposited(self, event: facta.RecordedEvent, connection: Any) -> None:
        data = event.data
        self.balances[data.account] = self.balances.get(data.account, 0) + data.amount


def test_the_toy_scheme_is_found_through_the_entry_points() -> None:
    found = [entry for entry in entry_points(group=GROUP) if entry.name == "toy"]
    assert [entry.value for entry in found] == ["toy_backend:backend"]
    assert schemes()["toy"] == "toy_backend:backend"


def test_an_unknown_option_for_the_toy_scheme_is_refused() -> None:
    with pytest.raises(facta.FactaError, match="unknown option"):
        facta.connect("toy://", pool_size=3)


def test_a_catch_up_projection_and_an_inline_projection_agree(store_with_deposits: Any) -> None:
    store, inline = store_with_deposits
    catch_up = Balances("toy-balances")
    with ProjectionRunner(store, catch_up) as runner:
        assert runner.catch_up() == 3
    assert catch_up.balances == inline.balances == {"a": 15, "b": 7}
    store.append("account-a", [Deposited("a", 1)], facta.ANY)
    with ProjectionRunner(store, catch_up) as runner:
        assert runner.catch_up() == 1
    assert catch_up.balances == inline.balances == {"a": 16, "b": 7}


def test_facta_check_reads_every_event_of_the_toy_store(store_with_deposits: Any) -> None:
    store, _ = store_with_deposits
    report = facta.check_store(store)
    assert report.ok
    assert (report.streams, report.events) == (2, 3)


@pytest.fixture
def store_with_deposits() -> Iterator[tuple[facta.EventStore, Balances]]:
    """A toy store with an inline projection and three deposits in two accounts."""
    with facta.connect("toy://") as store:
        inline = Balances("toy-inline-balances")
        add_inline(store, inline)
        store.append("account-a", [Deposited("a", 10), Deposited("a", 5)], facta.ANY)
        store.append("account-b", [Deposited("b", 7)], facta.ANY)
        yield store, inline
