"""The SQLite store's data keys (``facta_data_keys``), through the recorder's connection.

Every facta connection to the file has ``secure_delete`` on, so a forgotten key's row is
overwritten with zeros, not just unlinked; a forget then truncates the ``-wal`` file, whose
older page images would otherwise keep the row until they are written over.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from facta.personal.data_keys import StoredKey
from facta.personal.key_table_async import AsyncKeyTable

__all__ = ["AsyncSQLiteKeyTable"]

T = TypeVar("T")
Run = Callable[..., Any]  # the recorder's _run: a coroutine function in the async store

_COLUMNS = "subject, key_id, master_key_id, wrapped"
_CHUNK = 500  # subjects per statement: well inside SQLite's limit on parameters
_INSERT = "INSERT OR IGNORE INTO facta_data_keys VALUES (?, ?, ?, ?, ?)"
_REPLACE = (
    "UPDATE facta_data_keys SET master_key_id = ?, wrapped = ? WHERE subject = ? AND key_id = ?"
)


class AsyncSQLiteKeyTable(AsyncKeyTable):
    """Runs each call through the recorder's ``run`` (its lock, its worker thread) on the
    connection ``db()``; ``check_writable`` refuses writes to a store opened read-only."""

    def __init__(
        self, run: Run, db: Callable[[], sqlite3.Connection], check_writable: Callable[[], None]
    ) -> None:
        self._run, self._db, self._check_writable = run, db, check_writable

    async def read(self, subjects: Sequence[str]) -> list[StoredKey]:
        result: list[StoredKey] = await self._run(self._select, list(dict.fromkeys(subjects)))
        return result

    async def add(self, keys: Sequence[StoredKey]) -> list[StoredKey]:
        self._check_writable()
        result: list[StoredKey] = await self._run(self._add, list(keys))
        return result

    async def delete(self, subjects: Sequence[str]) -> int:
        self._check_writable()
        deleted: int = await self._run(self._delete, list(set(subjects)))
        return deleted

    async def page(self, after: str | None, limit: int) -> list[StoredKey]:
        query = f"SELECT {_COLUMNS} FROM facta_data_keys WHERE subject > ? ORDER BY subject LIMIT ?"
        rows: list[Any] = await self._run(
            self._fetch, query, ("" if after is None else after, limit)
        )
        return [StoredKey(*row) for row in rows]

    async def replace(self, keys: Sequence[StoredKey]) -> int:
        self._check_writable()
        done: int = await self._run(self._replace, list(keys))
        return done

    def _fetch(self, query: str, params: Sequence[Any]) -> list[Any]:
        return self._db().execute(query, params).fetchall()

    def _select(self, subjects: list[str]) -> list[StoredKey]:
        found = []
        for start in range(0, len(subjects), _CHUNK):
            chunk = subjects[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM facta_data_keys WHERE subject IN ({marks})"
            found += [StoredKey(*row) for row in self._db().execute(query, chunk)]
        return found

    def _add(self, keys: list[StoredKey]) -> list[StoredKey]:
        now = time.time()
        added: list[StoredKey] = self._write(
            lambda db: db.executemany(_INSERT, [(*key, now) for key in keys]),
            lambda: self._select([key.subject for key in keys]),
        )
        return added

    def _delete(self, subjects: list[str]) -> int:
        def delete(db: sqlite3.Connection) -> int:
            count = 0
            for start in range(0, len(subjects), _CHUNK):
                chunk = subjects[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                cur = db.execute(f"DELETE FROM facta_data_keys WHERE subject IN ({marks})", chunk)
                count += cur.rowcount
            return count

        deleted: int = self._write(delete, None)
        # The -wal file keeps the page images written before: truncate it. Best effort, at
        # once: a reader at work holds it back (not waited for), and a later checkpoint
        # writes over those images.
        db = self._db()
        (timeout,) = db.execute("PRAGMA busy_timeout").fetchone()
        db.execute("PRAGMA busy_timeout = 0")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError:  # another connection holds the file: leave it
            pass
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        return deleted

    def _replace(self, keys: list[StoredKey]) -> int:
        params = [(key.master_key_id, key.wrapped, key.subject, key.key_id) for key in keys]
        done: int = self._write(lambda db: db.executemany(_REPLACE, params).rowcount, None)
        return done

    def _write(
        self, change: Callable[[sqlite3.Connection], Any], then: Callable[[], T] | None
    ) -> Any:
        """``change`` in one ``BEGIN IMMEDIATE`` transaction; what ``then`` reads inside it
        (or what ``change`` returned)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            outcome = change(db)
            if then is not None:
                outcome = then()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        return outcome
