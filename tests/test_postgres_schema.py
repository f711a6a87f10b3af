"""The PostgreSQL store's schema: migrations, schema names in URLs, stores side by side."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

import facta
from facta.backends.postgres import PostgresEventStore, migrate
from facta.backends.postgres_schema import latest_version
from facta.backends.postgres_sql import split_url
from facta.errors import SchemaVersionError, StoreError
from facta.testing.events import Happened

pytestmark = pytest.mark.postgres

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def url_of(schema: str) -> str:
    return f"{POSTGRES_URL}?schema={schema}"


def tables(schema: str) -> set[str]:
    with psycopg.connect(POSTGRES_URL) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchall()
    return {row[0] for row in rows}


def set_version(schema: str, version: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".facta_migrations (version) VALUES (%s)', [version])


@pytest.fixture
def other_schema() -> Iterator[str]:
    """A second private schema, dropped after the test."""
    name = f"facta_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_migrate_creates_the_schema_and_returns_the_versions_it_applied(pg_schema: str) -> None:
    assert migrate(url_of(pg_schema)) == [1]
    assert {"events", "streams", "snapshots", "facta_migrations"} <= tables(pg_schema)


def test_migrate_of_an_up_to_date_schema_applies_nothing(pg_schema: str) -> None:
    migrate(url_of(pg_schema))
    assert migrate(url_of(pg_schema)) == []


def test_migrations_run_from_many_threads_at_once_apply_each_version_once(pg_schema: str) -> None:
    start = threading.Barrier(4)

    def run() -> list[int]:
        start.wait()
        return migrate(url_of(pg_schema))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(), range(4)))
    assert sorted(results) == [[], [], [], [1]]
    with psycopg.connect(POSTGRES_URL) as conn:
        rows = conn.execute(f'SELECT version FROM "{pg_schema}".facta_migrations').fetchall()
    assert rows == [(1,)]


def test_a_store_migrates_its_schema_on_first_use(pg_schema: str) -> None:
    with PostgresEventStore(url_of(pg_schema)) as store:
        store.append("s", [Happened(1)])
    assert migrate(url_of(pg_schema)) == []


def test_a_store_connects_only_when_first_used(pg_schema: str) -> None:
    with PostgresEventStore(url_of(pg_schema)):
        pass
    assert tables(pg_schema) == set()


def test_a_store_refuses_a_schema_newer_than_it_knows_naming_both_versions(
    pg_schema: str,
) -> None:
    migrate(url_of(pg_schema))
    set_version(pg_schema, 999)
    with (
        PostgresEventStore(url_of(pg_schema)) as store,
        pytest.raises(SchemaVersionError, match=rf"version 999.* up to {latest_version()}"),
    ):
        store.stream_version("s")


def test_migrate_refuses_a_schema_newer_than_it_knows(pg_schema: str) -> None:
    migrate(url_of(pg_schema))
    set_version(pg_schema, 999)
    with pytest.raises(SchemaVersionError, match="999"):
        migrate(url_of(pg_schema))


def test_a_store_told_not_to_migrate_refuses_an_unmigrated_schema(pg_schema: str) -> None:
    with (
        PostgresEventStore(url_of(pg_schema), migrate=False) as store,
        pytest.raises(SchemaVersionError, match="facta migrate"),
    ):
        store.stream_version("s")


def test_a_store_told_not_to_migrate_uses_a_migrated_schema(pg_schema: str) -> None:
    migrate(url_of(pg_schema))
    with PostgresEventStore(url_of(pg_schema), migrate=False) as store:
        assert store.append("s", [Happened(1)]).version == 1


def test_the_schema_argument_wins_over_the_url_parameter(pg_schema: str) -> None:
    with PostgresEventStore(url_of("ignored"), schema=pg_schema) as store:
        assert store.schema == pg_schema


def test_the_default_schema_is_public() -> None:
    with PostgresEventStore(POSTGRES_URL) as store:
        assert store.schema == "public"


def test_the_schema_parameter_leaves_the_url_and_other_parameters_stay() -> None:
    conninfo, schema = split_url(
        "postgresql://u:p%40ss@h:5433/db?application_name=a%20b&schema=s1&sslmode=disable"
    )
    assert schema == "s1"
    assert conninfo == "postgresql://u:p%40ss@h:5433/db?application_name=a%20b&sslmode=disable"


def test_a_schema_name_too_long_for_postgresql_is_refused() -> None:
    with pytest.raises(ValueError, match="63 bytes"):
        PostgresEventStore(POSTGRES_URL, schema="s" * 64)


def test_a_schema_name_with_quotes_and_sql_is_only_a_name(pg_schema: str) -> None:
    weird = f'{pg_schema}"; DROP TABLE x; --'
    try:
        with PostgresEventStore(POSTGRES_URL, schema=weird) as store:
            store.append("s", [Happened(1)])
            assert [e.data for e in store.read_stream("s")] == [Happened(1)]
        assert "events" in tables(weird)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{weird.replace(chr(34), chr(34) * 2)}" CASCADE')


def test_facta_connect_opens_a_postgres_store_in_the_urls_schema(pg_schema: str) -> None:
    with facta.connect(url_of(pg_schema)) as store:
        assert isinstance(store, PostgresEventStore)
        assert store.schema == pg_schema


def test_stores_in_two_schemas_of_one_database_do_not_see_each_other(
    pg_schema: str, other_schema: str
) -> None:
    with (
        PostgresEventStore(url_of(pg_schema)) as one,
        PostgresEventStore(url_of(other_schema)) as two,
    ):
        one.append("shared-id", [Happened(1)])
        two.append("shared-id", [Happened(2), Happened(3)])
        assert [e.data.n for e in one.read_all()] == [1]
        assert [e.data.n for e in two.read_stream("shared-id")] == [2, 3]
        assert list(one.streams()) == [("shared-id", 1)]


def test_an_unreachable_server_raises_store_error_naming_it_without_the_password() -> None:
    with (
        PostgresEventStore("postgresql://u:secret@127.0.0.1:1/db") as store,
        pytest.raises(StoreError, match=re.escape("127.0.0.1:1/db")) as raised,
    ):
        store.stream_version("s")
    assert "secret" not in str(raised.value)
