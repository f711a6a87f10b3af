"""The bank's tests: the domain with ``facta.testing.scenario``, the API with httpx against
the app in the same process (its lifespan runs, as under a server).

``BankAppTests`` needs a ``client`` fixture: ``client_for(url)`` makes one over a store.
``tests/test_example_apps.py`` binds them to SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from facta.testing import scenario

from .app import create_app
from .domain import Account, AccountOpened, InsufficientFunds, MoneyDeposited, MoneyWithdrawn

PATIENCE = 60.0  # seconds the read model may lag (PostgreSQL: other sessions hold it back)


@asynccontextmanager
async def client_for(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app over the store at ``url``, between its startup and shutdown."""
    app = create_app(url, poll_interval=0.05)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bank") as client,
    ):
        yield client


async def eventually(client: httpx.AsyncClient, path: str, check: Callable[[Any], bool]) -> Any:
    """The JSON body of ``GET path`` once ``check`` holds of it (the read model catches up)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        response = await client.get(path)
        body = response.json() if response.status_code == 200 else None
        if body is not None and check(body):
            return body
        assert time.monotonic() < deadline, f"GET {path}: {response.status_code} {response.text}"
        await asyncio.sleep(0.02)


class DomainTests:
    def test_a_deposit_is_recorded(self) -> None:
        account = (
            scenario(Account)
            .given(AccountOpened("ada"))
            .when(lambda a: a.deposit(5))
            .then(MoneyDeposited(5))
        )
        assert (account.owner, account.balance) == ("ada", 5)

    def test_a_deposit_of_nothing_is_refused(self) -> None:
        scenario(Account).given(AccountOpened("ada")).when(lambda a: a.deposit(0)).then_raises(
            ValueError, match="positive amount"
        )

    def test_a_withdrawal_within_the_balance_is_recorded(self) -> None:
        account = (
            scenario(Account)
            .given(AccountOpened("ada"), MoneyDeposited(100))
            .when(lambda a: a.withdraw(30))
            .then(MoneyWithdrawn(30))
        )
        assert account.balance == 70

    def test_a_withdrawal_over_the_balance_is_refused(self) -> None:
        (
            scenario(Account)
            .given(AccountOpened("ada"), MoneyDeposited(100))
            .when(lambda a: a.withdraw(101))
            .then_raises(InsufficientFunds, match="the balance is 100")
        )


class BankAppTests:
    async def open(self, client: httpx.AsyncClient, owner: str = "ada") -> dict[str, Any]:
        response = await client.post("/accounts", json={"owner": owner})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def test_an_opened_account_is_at_version_1(self, client: httpx.AsyncClient) -> None:
        opened = await self.open(client)
        assert (opened["owner"], opened["balance"], opened["version"]) == ("ada", 0, 1)
        response = await client.get(f"/accounts/{opened['id']}")
        assert response.json() == opened

    async def test_an_unknown_account_is_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/accounts/nobody")
        assert response.status_code == 404
        assert "no Account with id 'nobody'" in response.json()["detail"]
        deposit = await client.post("/accounts/nobody/deposits", json={"amount": 5})
        assert deposit.status_code == 404

    async def test_deposits_and_withdrawals_move_the_balance(
        self, client: httpx.AsyncClient
    ) -> None:
        account = (await self.open(client))["id"]
        await client.post(f"/accounts/{account}/deposits", json={"amount": 100})
        response = await client.post(f"/accounts/{account}/withdrawals", json={"amount": 30})
        assert (response.json()["balance"], response.json()["version"]) == (70, 3)

    async def test_a_stale_expected_version_is_a_conflict_and_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        account = (await self.open(client))["id"]
        first = await client.post(
            f"/accounts/{account}/deposits", json={"amount": 10, "expected_version": 1}
        )
        assert first.status_code == 200
        stale = await client.post(
            f"/accounts/{account}/deposits", json={"amount": 10, "expected_version": 1}
        )
        assert stale.status_code == 409
        assert "expected version 1, but the stream is at version 2" in stale.json()["detail"]
        future = await client.post(
            f"/accounts/{account}/withdrawals", json={"amount": 1, "expected_version": 9}
        )
        assert future.status_code == 409
        assert (await client.get(f"/accounts/{account}")).json()["balance"] == 10

    async def test_withdrawing_more_than_the_balance_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        account = (await self.open(client))["id"]
        response = await client.post(f"/accounts/{account}/withdrawals", json={"amount": 1})
        assert response.status_code == 422
        assert "the balance is 0" in response.json()["detail"]
        bad = await client.post(f"/accounts/{account}/deposits", json={"amount": -5})
        assert bad.status_code == 422  # refused by the request's model
        assert (await client.get(f"/accounts/{account}")).json()["version"] == 1

    async def test_concurrent_deposits_are_all_kept(self, client: httpx.AsyncClient) -> None:
        account = (await self.open(client))["id"]
        deposits = [
            client.post(f"/accounts/{account}/deposits", json={"amount": 1}) for _ in range(10)
        ]
        assert {r.status_code for r in await asyncio.gather(*deposits)} == {200}
        body = (await client.get(f"/accounts/{account}")).json()
        assert (body["balance"], body["version"]) == (10, 11)

    async def test_the_balances_read_model_follows_the_accounts(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = (await self.open(client, "ada"))["id"]
        bob = (await self.open(client, "bob"))["id"]
        await client.post(f"/accounts/{ada}/deposits", json={"amount": 100})
        await client.post(f"/accounts/{ada}/withdrawals", json={"amount": 25})
        await client.post(f"/accounts/{bob}/deposits", json={"amount": 7})
        seen = await eventually(client, f"/balances/{ada}", lambda body: body["balance"] == 75)
        assert seen == {"account": ada, "owner": "ada", "balance": 75}
        listed = await eventually(
            client,
            "/balances",
            lambda body: {b["account"]: b["balance"] for b in body} == {ada: 75, bob: 7},
        )
        assert sorted(b["owner"] for b in listed) == ["ada", "bob"]
        missing = await client.get("/balances/nobody")
        assert missing.status_code == 404
