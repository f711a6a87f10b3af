"""The example applications' own tests, run by the test-suite.

``examples/fastapi_bank``: its tests run here, in this process, with httpx against the app, on
SQLite and on PostgreSQL (a private schema each). ``examples/django_bank``: Django's test
runner runs its tests in a process of its own, on PostgreSQL, in a test database it creates and
drops.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi_bank.tests import BankAppTests, DomainTests, client_for
from psycopg.conninfo import conninfo_to_dict

DJANGO_BANK = Path(__file__).resolve().parent.parent / "examples" / "django_bank"

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


@pytest.mark.postgres
def test_the_django_bank_passes_its_tests_on_postgresql(postgres_url: str) -> None:
    server = conninfo_to_dict(postgres_url)
    name = f"facta_django_bank_{uuid.uuid4().hex[:12]}"  # Django tests in "test_" + name
    environment = {
        **os.environ,
        "BANK_DATABASE_NAME": name,
        "BANK_DATABASE_HOST": str(server.get("host", "127.0.0.1")),
        "BANK_DATABASE_PORT": str(server.get("port", "5432")),
        "BANK_DATABASE_USER": str(server.get("user", "postgres")),
        "BANK_DATABASE_PASSWORD": str(server.get("password", "")),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-W", "error", "manage.py", "test", "--noinput", "-v", "2"],
            cwd=DJANGO_BANK,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            left = conn.execute(
                "SELECT datname FROM pg_database WHERE datname = %s", [f"test_{name}"]
            ).fetchall()
            conn.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.search(r"^Ran (\d+) tests? in .*\n\nOK", done.stderr, re.MULTILINE)
    assert ran is not None, done.stderr
    assert int(ran[1]) >= 10
    assert "test_the_customer_the_events_and_the_balance_commit_together" in done.stderr
    assert left == []  # the runner dropped its test database
