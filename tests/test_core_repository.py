"""Repositories: load replays a stream, save appends what was recorded, update retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

import facta


@facta.event("tests.repository.Opened")
@dataclass(frozen=True)
class Opened:
    owner: str


@facta.event("tests.repository.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


class Account(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.owner: str | None = None
        self.balance = 0

    @classmethod
    def open(cls, owner: str) -> Account:
        account = cls()
        account.record(Opened(owner))
        return account

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    def apply(self, event: object) -> None:
        match event:
            case Opened(owner=owner):
                self.owner = owner
            case Deposited(amount=amount):
                self.balance += amount


@pytest.fixture
def store() -> Iterator[facta.EventStore]:
    with facta.connect("memory://") as opened:
        yield opened


@pytest.fixture
def repo(store: facta.EventStore) -> facta.Repository[Account]:
    return facta.Repository(store, Account)


@pytest.fixture
async def async_repo() -> AsyncIterator[facta.AsyncRepository[Account]]:
    async with facta.connect_async("memory://") as store:
        yield facta.AsyncRepository(store, Account)


def saved_account(repo: facta.Repository[Account], *deposits: int) -> Account:
    account = Account.open("ada")
    for amount in deposits:
        account.deposit(amount)
    repo.save(account)
    return account


def test_a_saved_aggregate_loads_with_the_same_state_and_version(
    repo: facta.Repository[Account],
) -> None:
    account = saved_account(repo, 5, 7)
    loaded = repo.load(account.id)
    assert (loaded.id, loaded.owner, loaded.balance, loaded.version) == (account.id, "ada", 12, 3)
    assert loaded.pending_events == ()


def test_save_clears_pending_events_and_moves_the_version_on(
    repo: facta.Repository[Account],
) -> None:
    account = saved_account(repo, 5)
    assert (account.pending_events, account.version) == ((), 2)
    account.deposit(1)
    result = repo.save(account)
    assert result is not None
    assert result.version == 3
    assert (account.pending_events, account.version) == ((), 3)


def test_save_with_nothing_pending_writes_nothing(
    repo: facta.Repository[Account], store: facta.EventStore
) -> None:
    account = saved_account(repo)
    assert repo.save(account) is None
    assert store.stream_version(account.id) == 1


def test_load_of_a_missing_aggregate_raises_aggregate_not_found(
    repo: facta.Repository[Account],
) -> None:
    missing = facta.new_id()
    with pytest.raises(facta.AggregateNotFound) as raised:
        repo.load(missing)
    assert (raised.value.aggregate_type, raised.value.stream_id) == ("Account", missing)
    assert repr(missing) in str(raised.value)


def test_load_of_an_invalid_id_raises_invalid_stream_id(repo: facta.Repository[Account]) -> None:
    with pytest.raises(facta.InvalidStreamId):
        repo.load("")


def test_load_at_a_version_replays_up_to_that_version(repo: facta.Repository[Account]) -> None:
    account = saved_account(repo, 5, 7, 9)
    loaded = repo.load(account.id, version=3)
    assert (loaded.balance, loaded.version) == (12, 3)


def test_load_replays_a_stream_longer_than_one_read_batch(
    repo: facta.Repository[Account],
) -> None:
    account = saved_account(repo, *([1] * 2500))
    loaded = repo.load(account.id)
    assert (loaded.balance, loaded.version) == (2500, 2501)


def test_saving_a_stale_aggregate_raises_and_keeps_its_pending_events(
    repo: facta.Repository[Account],
) -> None:
    account = saved_account(repo)
    first, second = repo.load(account.id), repo.load(account.id)
    first.deposit(1)
    repo.save(first)
    second.deposit(2)
    with pytest.raises(facta.ConcurrencyError):
        repo.save(second)
    assert (second.pending_events, second.version) == ((Deposited(2),), 1)
    assert repo.load(account.id).balance == 1


def test_save_attaches_the_metadata_to_every_event(
    repo: facta.Repository[Account], store: facta.EventStore
) -> None:
    account = Account.open("ada")
    account.deposit(5)
    metadata = facta.Metadata(correlation_id="c-1", user={"by": "ops"})
    repo.save(account, metadata=metadata)
    assert [e.metadata for e in store.read_stream(account.id)] == [metadata, metadata]


def test_update_loads_runs_the_command_and_saves(repo: facta.Repository[Account]) -> None:
    account = saved_account(repo)
    updated = repo.update(account.id, lambda a: a.deposit(10))
    assert (updated.balance, updated.version) == (10, 2)
    assert repo.load(account.id).balance == 10


def test_update_reruns_the_command_on_fresh_state_after_a_conflict(
    repo: facta.Repository[Account],
) -> None:
    account = saved_account(repo)
    balances_seen: list[int] = []

    def deposit_while_someone_else_does(target: Account) -> None:
        balances_seen.append(target.balance)
        if len(balances_seen) == 1:  # a competing writer gets in between load and save
            repo.update(account.id, lambda other: other.deposit(100))
        target.deposit(1)

    updated = repo.update(account.id, deposit_while_someone_else_does)
    assert balances_seen == [0, 100]
    assert (updated.balance, repo.load(account.id).balance) == (101, 101)


def test_update_gives_up_after_its_attempts_and_says_how_many(
    repo: facta.Repository[Account],
) -> None:
    account = saved_account(repo)
    calls = 0

    def always_overtaken(target: Account) -> None:
        nonlocal calls
        calls += 1
        repo.update(account.id, lambda other: other.deposit(100))
        target.deposit(1)

    with pytest.raises(facta.RetriesExhausted) as raised:
        repo.update(account.id, always_overtaken, attempts=3)
    assert (raised.value.stream_id, raised.value.attempts, calls) == (account.id, 3, 3)
    assert isinstance(raised.value.last, facta.ConcurrencyError)
    assert "3 attempts" in str(raised.value)
    assert repo.load(account.id).balance == 300


def test_update_of_a_missing_aggregate_raises_aggregate_not_found(
    repo: facta.Repository[Account],
) -> None:
    with pytest.raises(facta.AggregateNotFound):
        repo.update(facta.new_id(), lambda a: a.deposit(1))


def test_update_with_create_runs_the_command_on_a_new_aggregate(
    repo: facta.Repository[Account],
) -> None:
    new = facta.new_id()
    repo.update(new, lambda a: a.record(Opened("bob")), create=True)
    assert repo.load(new).owner == "bob"


def test_a_failing_command_is_not_retried_and_saves_nothing(
    repo: facta.Repository[Account], store: facta.EventStore
) -> None:
    account = saved_account(repo)
    calls = 0

    def deposit_then_fail(target: Account) -> None:
        nonlocal calls
        calls += 1
        target.deposit(1)
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        repo.update(account.id, deposit_then_fail)
    assert (calls, store.stream_version(account.id)) == (1, 1)


@pytest.mark.parametrize("attempts", [0, -1])
def test_update_needs_at_least_one_attempt(repo: facta.Repository[Account], attempts: int) -> None:
    with pytest.raises(ValueError, match="attempts"):
        repo.update(facta.new_id(), lambda a: None, attempts=attempts)


async def test_the_async_repository_saves_and_loads(
    async_repo: facta.AsyncRepository[Account],
) -> None:
    account = Account.open("ada")
    account.deposit(3)
    await async_repo.save(account)
    loaded = await async_repo.load(account.id)
    assert (loaded.owner, loaded.balance, loaded.version) == ("ada", 3, 2)


async def test_the_async_repository_raises_aggregate_not_found(
    async_repo: facta.AsyncRepository[Account],
) -> None:
    with pytest.raises(facta.AggregateNotFound):
        await async_repo.load(facta.new_id())


async def test_the_async_update_reruns_the_command_after_a_conflict(
    async_repo: facta.AsyncRepository[Account],
) -> None:
    account = Account.open("ada")
    await async_repo.save(account)
    calls = 0

    def deposit_stale_once(target: Account) -> None:
        nonlocal calls
        calls += 1
        target.deposit(1)
        if calls == 1:  # the first save expects a version the stream has already passed
            target.version -= 1

    updated = await async_repo.update(account.id, deposit_stale_once)
    assert (updated.balance, updated.version, calls) == (1, 2, 2)


async def test_the_async_update_gives_up_after_its_attempts(
    async_repo: facta.AsyncRepository[Account],
) -> None:
    account = Account.open("ada")
    await async_repo.save(account)
    store = async_repo.store

    def always_overtaken(target: Account) -> None:
        target.deposit(1)
        target.version -= 1  # saves will expect a version the stream has already passed

    with pytest.raises(facta.RetriesExhausted) as raised:
        await async_repo.update(account.id, always_overtaken, attempts=2)
    assert raised.value.attempts == 2
    assert await store.stream_version(account.id) == 1
