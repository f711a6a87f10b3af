"""Quickstart: an aggregate, its events, a store and a repository (the README's example)."""

from dataclasses import dataclass

import facta


@facta.event("AccountOpened")  # the stored type name: stable, never a module path
@dataclass(frozen=True)
class AccountOpened:
    owner: str


@facta.event("MoneyDeposited")
@dataclass(frozen=True)
class MoneyDeposited:
    amount: int


class Account(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)  # the empty state every load starts from
        self.owner, self.balance = "", 0

    @classmethod
    def open(cls, owner: str) -> "Account":
        account = cls()  # a new UUIDv7 id, version 0
        account.record(AccountOpened(owner))
        return account

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("deposit a positive amount")
        self.record(MoneyDeposited(amount))  # applied now, saved by the repository

    def apply(self, event: object) -> None:  # the only place state changes
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=amount):
                self.balance += amount


with facta.connect("memory://") as store:  # or "sqlite:///bank.db", "postgresql://..."
    repo = facta.Repository(store, Account)
    account = Account.open(owner="ada")
    account.deposit(100)
    repo.save(account)  # appends both events, expecting version 0
    again = repo.load(account.id)  # replays the stream
    print(again.owner, again.balance, again.version)  # ada 100 2
    repo.update(account.id, lambda a: a.deposit(5))  # load, run, save; retried on conflict
    print(repo.load(account.id).balance)  # 105
