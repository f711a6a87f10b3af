"""What the bank does: each command saves its events and its models in one transaction.

Inside ``transaction.atomic()``, the repository saves on Django's own connection
(``connection=``): the events, the balances read model (an inline projection) and the
customer row commit together, or, if anything raises, none of them. The events are appended
first and the models written after, so each stream's versions stay in the global log's order
without a retry (see facta's guide, "Appending in your own transaction").
"""

from __future__ import annotations

from django.db import transaction

import facta

from .domain import Account
from .models import Customer
from .store import accounts, atomic_connection


def open_account(name: str, email: str, opening_deposit: int = 0) -> Customer:
    """A new customer and their account; ``IntegrityError`` (nothing kept) if the e-mail is
    taken."""
    account = Account.open(name)
    if opening_deposit:
        account.deposit(opening_deposit)
    with transaction.atomic():
        accounts().save(account, connection=atomic_connection())
        return Customer.objects.create(email=email, name=name, account_id=account.id)


def deposit(account_id: str, amount: int, expected_version: int | None = None) -> Account:
    """Deposit into an account, as it is now or as the caller saw it (``expected_version``:
    ``ConcurrencyError`` if it has moved on since)."""
    repository = accounts()
    account = repository.load(account_id, version=expected_version)
    if expected_version is not None and account.version != expected_version:
        raise facta.ConcurrencyError(account_id, expected_version, account.version)
    account.deposit(amount)
    with transaction.atomic():
        repository.save(account, connection=atomic_connection())
    return account
