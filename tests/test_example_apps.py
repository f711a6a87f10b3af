"""The example applications' own tests, run by the test-suite.

``examples/fastapi_bank``: its tests run here, in this process, with httpx against the app, on
SQLite and on PostgreSQL (a private schema each). ``examples/django_bank``: Django's test
runner runs its tests in a process of its own, on PostgreSQL, in a test database it creates and
drops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi_bank.tests import BankAppTests, DomainTests, client_for

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bank.db'}"
    else:
        url = f"{postgres_url}?schema={request.getfixturevalue('pg_schema')}"
    async with client_for(url) as opened:
        yield opened


class TestFastAPIBank(BankAppTests):
    """The API, on each backend."""


class TestFastAPIBankDomain(DomainTests):
    """The aggregate, with given / when / then scenarios."""
