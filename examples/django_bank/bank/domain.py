"""An account's events, and the aggregate that decides on them."""

from __future__ import annotations

from dataclasses import dataclass

import facta


@facta.event("django_bank.AccountOpened")
@dataclass(frozen=True)
class AccountOpened:
    owner: str


@facta.event("django_bank.MoneyDeposited")
@dataclass(frozen=True)
class MoneyDeposited:
    amount: int


class Account(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.owner, self.balance = "", 0

    @classmethod
    def open(cls, owner: str) -> Account:
        account = cls()
        account.record(AccountOpened(owner))
        return account

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError(f"account {self.id}: deposit a positive amount, not {amount}")
        self.record(MoneyDeposited(amount))

    def apply(self, event: object) -> None:
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=amount):
                self.balance += amount
