"""The demo's bank domain: rules, the atomic transfer, and what the story leaves stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import facta
from facta.demo import Account, InsufficientFunds, master_key, money, run, transfer
from facta.personal import AesKeyProvider, generate_master_key, is_forgotten


@pytest.fixture
def store() -> Iterator[facta.EventStore]:
    with facta.connect("memory://", keys=AesKeyProvider(generate_master_key())) as opened:
        yield opened


def open_account(store: facta.EventStore, owner: str, deposit: int = 0) -> str:
    account = Account.open(owner)
    if deposit:
        account.deposit(deposit)
    facta.Repository(store, Account).save(account)
    return account.id


def test_withdrawing_more_than_the_balance_raises_and_records_nothing() -> None:
    account = Account.open("ada")
    account.deposit(10_00)
    with pytest.raises(InsufficientFunds, match=r"holds 10\.00, cannot take 10\.01"):
        account.withdraw(10_01)
    assert (account.balance, len(account.pending_events)) == (10_00, 2)


@pytest.mark.parametrize("amount", [0, -5])
def test_amounts_must_be_positive(amount: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Account.open("ada").deposit(amount)


def test_transfer_writes_both_streams_in_one_append(store: facta.EventStore) -> None:
    ada, grace = open_account(store, "ada", 50_00), open_account(store, "grace")
    sent, received = transfer(store, ada, grace, 20_00)
    assert (sent.version, received.version) == (3, 2)
    assert received.position == sent.position + 1
    repo = facta.Repository(store, Account)
    assert (repo.load(ada).balance, repo.load(grace).balance) == (30_00, 20_00)


def test_transfer_without_the_funds_writes_nothing(store: facta.EventStore) -> None:
    ada, grace = open_account(store, "ada", 5_00), open_account(store, "grace")
    with pytest.raises(InsufficientFunds):
        transfer(store, ada, grace, 20_00)
    assert (store.stream_version(ada), store.stream_version(grace)) == (2, 1)


def test_the_story_leaves_the_balances_it_tells(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    run(db, echo=lambda line: None)
    run(db, echo=lambda line: None)
    with facta.connect(f"sqlite:///{db}", keys=master_key(db)) as store:
        repo = facta.Repository(store, Account)
        ada = repo.load(facta.id_from_key("account", "ada"))
        grace = repo.load(facta.id_from_key("account", "grace"))
        linus = facta.id_from_key("account", "linus")
        with pytest.raises(facta.StreamDeleted):
            repo.load(linus)
        opened = next(iter(store.read_stream(linus)))
    # each run: Ada +100 -30 -10 +25, Grace +20 +30; Linus left (forgotten, deleted) in the first
    assert (ada.balance, ada.version, grace.balance, grace.version) == (170_00, 9, 100_00, 5)
    assert is_forgotten(opened.data.owner)
    assert b"Linus" not in db.read_bytes()


@pytest.mark.parametrize(
    ("cents", "text"), [(0, "0.00"), (5, "0.05"), (12345, "123.45"), (-250, "-2.50")]
)
def test_money_prints_cents_as_an_amount(cents: int, text: str) -> None:
    assert money(cents) == text
