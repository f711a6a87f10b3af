"""Inline projections: updated in the append's own transaction, or the append fails."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import facta
from facta.projections import AsyncProjection, Projection, ProjectionError, handles
from facta.projections.inline import add_inline, add_inline_async


@facta.event("test.projections_inline.Opened")
@dataclass(frozen=True)
class Opened:
    owner: str


@facta.event("test.projections_inline.Ignored")
@dataclass(frozen=True)
class Ignored:
    text: str


REFUSED = "mallory"  # handlers raise on an account opened for this owner


def owner(event: facta.RecordedEvent) -> str:
    name: str = event.data.owner
    if name == REFUSED:
        raise ValueError(f"{name} may not open accounts")
    return name


class SQLiteOwners(Projection[sqlite3.Connection]):
    name = "owners"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS owners (stream_id TEXT PRIMARY KEY, owner TEXT)")

    @handles(Opened)
    def opened(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO owners VALUES (?, ?)", (event.stream_id, owner(event)))


class MemoryOwners(Projection[None]):
    name = "owners"

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.positions: list[int] = []

    @handles(Opened)
    def opened(self, event: facta.RecordedEvent, connection: None) -> None:
        self.owners[event.stream_id] = owner(event)
        self.positions.append(event.position)


class AsyncMemoryOwners(AsyncProjection[None]):
    name = "owners"

    @handles(Opened)
    async def opened(self, event: facta.RecordedEvent, connection: None) -> None:
        owner(event)


def sqlite_owners(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT stream_id, owner FROM owners").fetchall())


def test_a_sqlite_inline_projection_is_current_as_soon_as_the_append_returns(
    tmp_path: Path,
) -> None:
    with facta.connect(f"sqlite:///{tmp_path / 'events.db'}") as store:
        add_inline(store, SQLiteOwners())
        store.append("account-1", [Opened("ada"), Ignored("x")], facta.ANY)
        assert sqlite_owners(tmp_path / "events.db") == {"account-1": "ada"}


def test_a_refusing_sqlite_inline_projection_fails_the_append_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    with facta.connect(f"sqlite:///{tmp_path / 'events.db'}") as store:
        add_inline(store, SQLiteOwners())
        store.append("account-1", [Opened("ada")], facta.ANY)
        with pytest.raises(ProjectionError, match="mallory may not open accounts") as failure:
            store.append_many(
                [
                    facta.StreamAppend("account-2", [Opened("bob")], facta.ANY),
                    facta.StreamAppend("account-3", [Opened(REFUSED)], facta.ANY),
                ]
            )
        assert "append was not written" in str(failure.value)
        assert failure.value.stream_id == "account-3"
        assert [e.stream_id for e in store.read_all()] == ["account-1"]
        assert sqlite_owners(tmp_path / "events.db") == {"account-1": "ada"}


def test_inline_projections_see_the_positions_the_events_were_stored_at(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []

    class Positions(Projection[sqlite3.Connection]):
        name = "positions"

        @handles(Opened, Ignored)
        def any(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
            seen.append((event.stream_id, event.version, event.position))

    with facta.connect(f"sqlite:///{tmp_path / 'events.db'}") as store:
        add_inline(store, Positions())
        store.append("a", [Opened("ada"), Ignored("x")], facta.ANY)
        store.append_many(
            [
                facta.StreamAppend("b", [Ignored("y")], facta.ANY),
                facta.StreamAppend("a", [Ignored("z")], facta.ANY),
            ]
        )
        stored = [(e.stream_id, e.version, e.position) for e in store.read_all()]
    assert seen == stored


async def test_the_async_sqlite_store_takes_sync_inline_projections(tmp_path: Path) -> None:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}") as store:
        await add_inline_async(store, SQLiteOwners())
        await store.append("account-1", [Opened("ada")], facta.ANY)
        with pytest.raises(ProjectionError):
            await store.append("account-2", [Opened(REFUSED)], facta.ANY)
        assert await store.stream_version("account-2") == 0
    assert sqlite_owners(tmp_path / "events.db") == {"account-1": "ada"}


async def test_an_async_inline_projection_on_sqlite_is_refused(tmp_path: Path) -> None:
    async with facta.connect_async(f"sqlite:///{tmp_path / 'events.db'}") as store:
        with pytest.raises(TypeError, match="are Projection subclasses"):
            await add_inline_async(store, AsyncMemoryOwners())


def test_a_refusing_memory_inline_projection_fails_the_append_and_nothing_is_written() -> None:
    owners = MemoryOwners()
    with facta.connect("memory://") as store:
        add_inline(store, owners)
        store.append("account-1", [Opened("ada")], facta.ANY)
        with pytest.raises(ProjectionError):
            store.append("account-1", [Opened("bob"), Opened(REFUSED)], facta.ANY)
        store.append("account-2", [Opened("eve")], facta.ANY)
        stored = [(e.stream_id, e.version, e.position) for e in store.read_all()]
    assert stored == [("account-1", 1, 1), ("account-2", 1, 2)]
    assert owners.owners == {"account-1": "bob", "account-2": "eve"}  # not transactional


async def test_the_async_memory_store_takes_sync_inline_projections() -> None:
    owners = MemoryOwners()
    async with facta.connect_async("memory://") as store:
        await add_inline_async(store, owners)
        await store.append("account-1", [Opened("ada")], facta.ANY)
    assert owners.owners == {"account-1": "ada"}


def test_two_inline_projections_of_one_name_are_refused() -> None:
    with facta.connect("memory://") as store:
        add_inline(store, MemoryOwners())
        with pytest.raises(ValueError, match="'owners' is already registered"):
            add_inline(store, MemoryOwners())


class PostgresOwners(Projection[psycopg.Connection[Any]]):
    name = "owners"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS owners (stream_id text PRIMARY KEY, owner text)")

    @handles(Opened)
    def opened(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute("INSERT INTO owners VALUES (%s, %s)", (event.stream_id, owner(event)))


class AsyncPostgresOwners(AsyncProjection[psycopg.AsyncConnection[Any]]):
    name = "owners"

    async def setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS owners (stream_id text PRIMARY KEY, owner text)"
        )

    @handles(Opened)
    async def opened(self, event: facta.RecordedEvent, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("INSERT INTO owners VALUES (%s, %s)", (event.stream_id, owner(event)))


def postgres_owners(url: str, schema: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        query = psycopg.sql.SQL("SELECT stream_id, owner FROM {}.owners")
        rows = conn.execute(query.format(psycopg.sql.Identifier(schema))).fetchall()
    return dict(rows)


@pytest.mark.postgres
def test_a_postgres_inline_projection_commits_with_the_append_or_not_at_all(
    postgres_url: str, pg_schema: str
) -> None:
    with facta.connect(f"{postgres_url}?schema={pg_schema}") as store:
        add_inline(store, PostgresOwners())
        store.append("account-1", [Opened("ada"), Ignored("x")], facta.ANY)
        with pytest.raises(ProjectionError, match="mallory may not open accounts"):
            store.append_many(
                [
                    facta.StreamAppend("account-2", [Opened("bob")], facta.ANY),
                    facta.StreamAppend("account-3", [Opened(REFUSED)], facta.ANY),
                ]
            )
        with pytest.raises(ProjectionError):
            store.append("account-4", [Opened(REFUSED)], facta.ANY)
        versions = [store.stream_version(f"account-{n}") for n in range(1, 5)]
        assert versions == [2, 0, 0, 0]
    assert postgres_owners(postgres_url, pg_schema) == {"account-1": "ada"}


@pytest.mark.postgres
def test_postgres_inline_projections_see_the_events_as_read_all_returns_them(
    postgres_url: str, pg_schema: str
) -> None:
    seen: list[tuple[str, int, int, int]] = []

    class Places(Projection[psycopg.Connection[Any]]):
        name = "places"

        @handles(Opened, Ignored)
        def any(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
            seen.append((event.stream_id, event.version, event.transaction_id, event.position))

    with facta.connect(f"{postgres_url}?schema={pg_schema}") as store:
        add_inline(store, Places())
        store.append("a", [Opened("ada"), Ignored("x")], facta.ANY)
        store.append_many(
            [
                facta.StreamAppend("b", [Ignored("y")], facta.ANY),
                facta.StreamAppend("a", [Ignored("z")], facta.ANY),
            ]
        )
        stored = [
            (e.stream_id, e.version, e.transaction_id, e.position)
            for stream_id in ("a", "b")
            for e in store.read_stream(stream_id)
        ]
    assert sorted(seen) == sorted(stored)


@pytest.mark.postgres
async def test_an_async_postgres_inline_projection_commits_with_the_append(
    postgres_url: str, pg_schema: str
) -> None:
    async with facta.connect_async(f"{postgres_url}?schema={pg_schema}") as store:
        await add_inline_async(store, AsyncPostgresOwners())
        await store.append("account-1", [Opened("ada")], facta.ANY)
        with pytest.raises(ProjectionError):
            await store.append("account-2", [Opened(REFUSED)], facta.ANY)
        assert await store.stream_version("account-2") == 0
    assert postgres_owners(postgres_url, pg_schema) == {"account-1": "ada"}


@pytest.mark.postgres
async def test_a_sync_inline_projection_on_the_async_postgres_store_is_refused(
    postgres_url: str, pg_schema: str
) -> None:
    async with facta.connect_async(f"{postgres_url}?schema={pg_schema}") as store:
        with pytest.raises(TypeError, match="are AsyncProjection subclasses"):
            await add_inline_async(store, PostgresOwners())
