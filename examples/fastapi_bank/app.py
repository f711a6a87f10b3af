"""The HTTP API of the bank: FastAPI over an async facta store.

The store is opened in the app's lifespan, with a runner that keeps the balances read model up
to date in the background; handlers get the repository as a dependency. A client may say which
version of an account it decided on (``expected_version``): if the account has moved on since,
the answer is 409 Conflict and nothing is written.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import facta
from facta.projections import AsyncProjectionRunner

from .domain import Account, InsufficientFunds
from .read_model import Balance, Balances, balance, balances


class OpenAccount(BaseModel):
    owner: str = Field(min_length=1)


class Amount(BaseModel):
    amount: int = Field(gt=0)
    expected_version: int | None = Field(
        default=None, ge=1, description="the version the client decided on; 409 if it moved on"
    )


class AccountView(BaseModel):
    id: str
    owner: str
    balance: int
    version: int

    @classmethod
    def of(cls, account: Account) -> AccountView:
        return cls(
            id=account.id, owner=account.owner, balance=account.balance, version=account.version
        )


def store(request: Request) -> facta.AsyncEventStore:
    """The store the lifespan opened."""
    opened: facta.AsyncEventStore = request.app.state.store
    return opened


def repository(request: Request) -> facta.AsyncRepository[Account]:
    """The accounts' repository, over the store the lifespan opened."""
    accounts: facta.AsyncRepository[Account] = request.app.state.repository
    return accounts


Store = Annotated[facta.AsyncEventStore, Depends(store)]
Accounts = Annotated[facta.AsyncRepository[Account], Depends(repository)]
router = APIRouter()


@router.post("/accounts", status_code=201)
async def open_account(body: OpenAccount, accounts: Accounts) -> AccountView:
    account = Account.open(body.owner)
    await accounts.save(account)
    return AccountView.of(account)


@router.get("/accounts/{account_id}")
async def get_account(account_id: str, accounts: Accounts) -> AccountView:
    return AccountView.of(await accounts.load(account_id))


@router.post("/accounts/{account_id}/deposits")
async def deposit(account_id: str, body: Amount, accounts: Accounts) -> AccountView:
    if body.expected_version is None:  # load, run, save; again on a conflict
        return AccountView.of(await accounts.update(account_id, lambda a: a.deposit(body.amount)))
    account = await _as_decided(accounts, account_id, body.expected_version)
    account.deposit(body.amount)
    await accounts.save(account)  # ConcurrencyError if the account moved on
    return AccountView.of(account)


@router.post("/accounts/{account_id}/withdrawals")
async def withdraw(account_id: str, body: Amount, accounts: Accounts) -> AccountView:
    if body.expected_version is None:
        return AccountView.of(await accounts.update(account_id, lambda a: a.withdraw(body.amount)))
    account = await _as_decided(accounts, account_id, body.expected_version)
    account.withdraw(body.amount)
    await accounts.save(account)
    return AccountView.of(account)


@router.get("/balances")
async def list_balances(store: Store) -> list[Balance]:
    return await balances(store)


@router.get("/balances/{account_id}", responses={404: {"description": "not projected (yet)"}})
async def get_balance(account_id: str, store: Store) -> Balance:
    found = await balance(store, account_id)
    if found is None:
        detail = f"no balance for account {account_id!r} in the read model (yet)"
        raise HTTPException(status_code=404, detail=detail)
    return found


async def _as_decided(
    accounts: facta.AsyncRepository[Account], account_id: str, version: int
) -> Account:
    """The account as the client saw it, at ``version``: saving it raises ConcurrencyError
    when the account has moved on since."""
    account = await accounts.load(account_id, version=version)
    if account.version != version:  # the client claims a version the account never had
        raise facta.ConcurrencyError(account_id, version, account.version)
    return account


async def _conflict(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=409, content={"detail": str(error)})


async def _not_found(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(error)})


async def _refused(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": str(error)})


def create_app(url: str, *, poll_interval: float = 1.0) -> FastAPI:
    """The app, over the store at ``url`` (opened when the app starts, closed when it stops).

    ``poll_interval`` bounds how long the read model's runner sleeps when it misses a wake-up.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            facta.connect_async(url) as opened,
            AsyncProjectionRunner(opened, Balances(), poll_interval=poll_interval) as runner,
        ):
            following = asyncio.create_task(runner.run())
            app.state.store = opened
            app.state.repository = facta.AsyncRepository(opened, Account)
            try:
                yield
            finally:
                runner.stop()
                await following

    app = FastAPI(title="facta bank", lifespan=lifespan)
    app.include_router(router)
    app.add_exception_handler(facta.ConcurrencyError, _conflict)
    app.add_exception_handler(facta.RetriesExhausted, _conflict)
    app.add_exception_handler(facta.AggregateNotFound, _not_found)
    app.add_exception_handler(InsufficientFunds, _refused)
    return app


def from_environment() -> FastAPI:
    """The app over the store ``BANK_URL`` names (``uvicorn --factory``)."""
    return create_app(os.environ.get("BANK_URL", "sqlite:///bank.db"))
