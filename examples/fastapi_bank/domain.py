"""The bank's domain: an account's events, and the aggregate that decides on them."""

from __future__ import annotations

from dataclasses import dataclass

import facta


@facta.event("fastapi_bank.AccountOpened")
@dataclass(frozen=True)
class AccountOpened:
    owner: str


@facta.event("fastapi_bank.MoneyDeposited")
@dataclass(frozen=True)
class MoneyDeposited:
    amount: int


@facta.event("fastapi_bank.MoneyWithdrawn")
@dataclass(frozen=True)
class MoneyWithdrawn:
    amount: int


class InsufficientFunds(Exception):
    """A withdrawal of more than the balance."""


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
            raise ValueError("deposit a positive amount")
        self.record(MoneyDeposited(amount))

    def withdraw(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("withdraw a positive amount")
        if amount > self.balance:
            raise InsufficientFunds(
                f"account {self.id}: cannot withdraw {amount}, the balance is {self.balance}"
            )
        self.record(MoneyWithdrawn(amount))

    def apply(self, event: object) -> None:
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount
