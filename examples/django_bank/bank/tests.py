"""The bank's tests, run by Django's test runner (``python manage.py test``) on PostgreSQL.

The services commit for real (``TransactionTestCase``): facta's store reads on connections of
its own, which see only what is committed. The aggregate's rules are tested with
``facta.testing.scenario``, without a database.
"""

from __future__ import annotations

import json

from django.db import DataError, IntegrityError, transaction
from django.test import Client, SimpleTestCase, TransactionTestCase

import facta
from facta.testing import scenario

from . import services
from .domain import Account, AccountOpened, MoneyDeposited
from .models import Balance, Customer
from .store import accounts, atomic_connection, event_store


class AccountRules(SimpleTestCase):
    def test_a_deposit_is_recorded(self) -> None:
        account = (
            scenario(Account)
            .given(AccountOpened("ada"))
            .when(lambda a: a.deposit(10))
            .then(MoneyDeposited(10))
        )
        self.assertEqual(account.balance, 10)

    def test_a_deposit_of_nothing_is_refused(self) -> None:
        scenario(Account).given(AccountOpened("ada")).when(lambda a: a.deposit(0)).then_raises(
            ValueError, match="positive amount"
        )


def all_streams() -> dict[str, int]:
    return {s.stream_id: s.version for s in event_store().streams()}


class OpeningAccounts(TransactionTestCase):
    # Django empties its own tables after each test, not facta's: a test looks at the streams
    # it made.
    def setUp(self) -> None:
        self.earlier = set(all_streams())

    def streams(self) -> dict[str, int]:
        return {s: version for s, version in all_streams().items() if s not in self.earlier}

    def test_the_customer_the_events_and_the_balance_commit_together(self) -> None:
        customer = services.open_account("ada", "ada@example.com", opening_deposit=100)
        self.assertEqual(self.streams(), {customer.account_id: 2})
        account = accounts().load(customer.account_id)
        self.assertEqual((account.owner, account.balance), ("ada", 100))
        row = Balance.objects.get(account_id=customer.account_id)
        self.assertEqual((row.owner, row.balance), ("ada", 100))

    def test_a_taken_email_leaves_no_events_and_no_balance(self) -> None:
        first = services.open_account("ada", "ada@example.com")
        with self.assertRaises(IntegrityError):
            services.open_account("eve", "ada@example.com", opening_deposit=5)
        self.assertEqual(self.streams(), {first.account_id: 1})
        self.assertEqual(list(Balance.objects.values_list("owner", flat=True)), ["ada"])
        self.assertEqual(Customer.objects.count(), 1)

    def test_a_model_the_database_refuses_after_the_save_rolls_the_events_back(self) -> None:
        with self.assertRaises(DataError):
            services.open_account("ada", "x" * 300 + "@example.com")  # over 254 characters
        self.assertEqual(self.streams(), {})
        self.assertEqual(Balance.objects.count(), 0)

    def test_a_rolled_back_block_keeps_nothing_of_a_save_made_in_it(self) -> None:
        account = Account.open("ada")
        with self.assertRaises(RuntimeError), transaction.atomic():
            accounts().save(account, connection=atomic_connection())
            Customer.objects.create(email="ada@example.com", name="ada", account_id=account.id)
            raise RuntimeError("changed our mind")
        self.assertEqual((self.streams(), Customer.objects.count()), ({}, 0))

    def test_appending_outside_an_atomic_block_is_refused(self) -> None:
        with self.assertRaisesMessage(RuntimeError, "inside transaction.atomic()"):
            atomic_connection()

    def test_a_deposit_at_a_stale_version_is_a_conflict_and_keeps_nothing(self) -> None:
        account_id = services.open_account("ada", "ada@example.com").account_id
        services.deposit(account_id, 10, expected_version=1)
        with self.assertRaises(facta.ConcurrencyError):
            services.deposit(account_id, 10, expected_version=1)
        self.assertEqual(Balance.objects.get(account_id=account_id).balance, 10)
        self.assertEqual(event_store().stream_version(account_id), 2)


class Api(TransactionTestCase):
    def post(self, path: str, body: object) -> tuple[int, dict[str, object]]:
        response = Client().post(path, json.dumps(body), content_type="application/json")
        return response.status_code, response.json()

    def test_open_deposit_and_read_the_balance(self) -> None:
        status, opened = self.post("/accounts", {"name": "ada", "email": "ada@example.com"})
        self.assertEqual(status, 201)
        account = opened["account_id"]
        status, deposited = self.post(f"/accounts/{account}/deposits", {"amount": 25})
        self.assertEqual((status, deposited), (200, {"balance": 25, "version": 2}))
        response = Client().get(f"/accounts/{account}")
        self.assertEqual(response.json(), {"owner": "ada", "balance": 25})

    def test_conflicts_are_409_and_unknown_accounts_404(self) -> None:
        _, opened = self.post("/accounts", {"name": "ada", "email": "ada@example.com"})
        account = opened["account_id"]
        taken, _ = self.post("/accounts", {"name": "eve", "email": "ada@example.com"})
        self.post(f"/accounts/{account}/deposits", {"amount": 1, "expected_version": 1})
        stale, body = self.post(
            f"/accounts/{account}/deposits", {"amount": 1, "expected_version": 1}
        )
        self.assertEqual((taken, stale), (409, 409))
        self.assertIn("expected version 1, but the stream is at version 2", str(body["detail"]))
        unknown, _ = self.post("/accounts/nobody/deposits", {"amount": 1})
        self.assertEqual(unknown, 404)
        self.assertEqual(Client().get("/accounts/nobody").status_code, 404)
