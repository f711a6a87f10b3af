"""The Django side: customers, and the balances read model an inline projection keeps.

The fields' types are spelled out for mypy (django-stubs, without its plugin).
"""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    """A customer and the account (a facta stream) opened for them."""

    email: models.EmailField[str, str] = models.EmailField(unique=True)
    name: models.CharField[str, str] = models.CharField(max_length=200)
    account_id: models.CharField[str, str] = models.CharField(max_length=100, unique=True)


class Balance(models.Model):
    """An account's balance: written by ``projections.Balances`` in each append's transaction,
    read with the ORM."""

    account_id: models.CharField[str, str] = models.CharField(max_length=100, primary_key=True)
    owner: models.CharField[str, str] = models.CharField(max_length=200)
    balance: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)

    class Meta:
        db_table = "bank_balance"  # the projection's SQL names it
