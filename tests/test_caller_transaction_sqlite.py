"""Appending in the caller's transaction on SQLite: the connections an append can join, reader
transactions that cannot become writers, and waits for another writer."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import facta
from facta.testing.events import Happened


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def store(path: Path) -> Iterator[facta.EventStore]:
    with facta.connect(f"sqlite:///{path}") as opened:
        yield opened


def connect(path: Path | str, timeout: float = 5.0) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=timeout)


def test_a_reader_transaction_that_cannot_become_a_writer_is_a_transaction_conflict(
    store: facta.EventStore, path: Path
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with closing(connect(path)) as conn:
        conn.execute("BEGIN")  # deferred: a reader until it writes
        conn.execute("SELECT count(*) FROM facta_events").fetchone()  # its snapshot
        store.append("s", [Happened(2)], 1)  # another connection writes after it
        with pytest.raises(facta.TransactionConflict, match="BEGIN IMMEDIATE") as refused:
            store.append("s", [Happened(3)], 2, connection=conn)
        assert (refused.value.stream_id, refused.value.expected, refused.value.actual) == (
            "s",
            2,
            2,
        )
        conn.rollback()
    assert store.stream_version("s") == 2


def test_a_transaction_begun_immediate_holds_the_write_lock_from_the_start(
    store: facta.EventStore, path: Path
) -> None:
    store.append("s", [Happened(1)], facta.NO_STREAM)
    with closing(connect(path)) as conn, closing(connect(path, timeout=0.05)) as other:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT count(*) FROM facta_events").fetchone()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")  # no one can write in between
        store.append("s", [Happened(2)], 1, connection=conn)
        conn.commit()
    assert store.stream_version("s") == 2


def test_an_append_that_waits_longer_than_the_connections_timeout_says_so(
    store: facta.EventStore, path: Path
) -> None:
    with closing(connect(path, timeout=0.05)) as conn, store.recorder.transaction():
        conn.execute("BEGIN")
        with pytest.raises(facta.StoreError, match="waited longer than the connection's timeout"):
            store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        assert conn.in_transaction  # the caller's to end
        conn.rollback()
    assert store.stream_version("s") == 0


def test_implicit_transactions_of_the_sqlite3_module_can_be_joined_once_begun(
    store: facta.EventStore, path: Path
) -> None:
    with closing(sqlite3.connect(path)) as conn:  # the module begins before an INSERT
        conn.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT)")
        with pytest.raises(facta.UnusableConnection, match="no transaction open"):
            store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        conn.execute("INSERT INTO notes VALUES ('ada')")
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert store.stream_version("s") == 1


def test_a_connection_with_a_row_factory_of_its_own_is_used_as_it_is(
    store: facta.EventStore, path: Path
) -> None:
    with closing(connect(path)) as conn:
        conn.row_factory = lambda cursor, row: {
            c[0]: v for c, v in zip(cursor.description, row, strict=True)
        }
        conn.execute("BEGIN IMMEDIATE")
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        store.append("s", [Happened(2)], 1, connection=conn)
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        conn.commit()
    assert store.stream_version("s") == 2


def test_a_connection_through_another_path_to_the_same_file_is_the_same_file(
    store: facta.EventStore, path: Path, tmp_path: Path
) -> None:
    (tmp_path / "link.db").symlink_to(path)
    with closing(connect(os.path.relpath(tmp_path / "link.db"))) as conn:
        conn.execute("BEGIN IMMEDIATE")
        store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
        conn.commit()
    assert store.stream_version("s") == 1


def test_connections_an_append_cannot_join_are_refused_and_nothing_is_written(
    store: facta.EventStore, path: Path, tmp_path: Path
) -> None:
    def refused(connection: object, match: str) -> None:
        with pytest.raises(facta.UnusableConnection, match=match):
            store.append("s", [Happened(1)], facta.NO_STREAM, connection=connection)

    refused(object(), "takes a sqlite3.Connection to its file, got builtins.object")
    with closing(connect(path)) as conn:
        refused(conn, "has no transaction open")
    with closing(connect(tmp_path / "other.db")) as conn:
        conn.execute("BEGIN IMMEDIATE")
        refused(conn, "other.db', not to the store's SQLite file")
    with closing(connect(":memory:")) as conn:
        conn.execute("BEGIN")
        refused(conn, "is to 'no file'")
    conn = connect(path)
    conn.close()
    refused(conn, "cannot be used")
    assert store.stream_version("s") == 0


def test_a_memory_database_is_private_to_the_stores_connection() -> None:
    with facta.connect("sqlite:///:memory:") as store, closing(connect(":memory:")) as conn:
        conn.execute("BEGIN")
        with pytest.raises(facta.UnusableConnection, match="private to the store's own connection"):
            store.append("s", [Happened(1)], facta.NO_STREAM, connection=conn)
