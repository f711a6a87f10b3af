# WARNING: generated from src/facta/backends/postgres/keys_async.py by tools/gen_sync.py; do not edit.
"""The PostgreSQL store's data keys (``facta_data_keys``), one statement per call.

A deleted row stays in the table's pages (and the server's WAL, and backups) until vacuum and
time remove it: that copy is wrapped under the master key, so it is shredded for good once
the master key it was wrapped under is rotated away and destroyed (docs/personal-data.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg import sql

from facta.personal.data_keys import StoredKey
from facta.personal.key_table import KeyTable

__all__ = ["PostgresKeyTable"]

Query = Callable[..., Any]  # the recorder's _query: a coroutine function in the async store

_COLUMNS = "subject, key_id, master_key_id, wrapped"
_UNNEST = "unnest(%s::text[], %s::text[], %s::text[], %s::bytea[])"
# Insert the keys of subjects that have none; then the stored key of each subject given. A
# key another writer committed after this statement began is not seen: the caller asks again.
_ADD = f"""
WITH given AS (SELECT * FROM {_UNNEST} AS g(subject, key_id, master_key_id, wrapped)),
added AS (
    INSERT INTO {{schema}}.facta_data_keys ({_COLUMNS}) SELECT * FROM given
    ON CONFLICT (subject) DO NOTHING
    RETURNING {_COLUMNS}
)
SELECT * FROM added
UNION ALL
SELECT {_COLUMNS} FROM {{schema}}.facta_data_keys
WHERE subject IN (SELECT subject FROM given) AND subject NOT IN (SELECT subject FROM added)"""
_READ = f"SELECT {_COLUMNS} FROM {{schema}}.facta_data_keys WHERE subject = ANY(%s::text[])"
_DELETE = "DELETE FROM {schema}.facta_data_keys WHERE subject = ANY(%s::text[]) RETURNING subject"
_PAGE = (
    f"SELECT {_COLUMNS} FROM {{schema}}.facta_data_keys WHERE subject > %s"
    " ORDER BY subject LIMIT %s"
)
_REPLACE = f"""
UPDATE {{schema}}.facta_data_keys AS d SET master_key_id = v.master_key_id, wrapped = v.wrapped
FROM {_UNNEST} AS v(subject, key_id, master_key_id, wrapped)
WHERE d.subject = v.subject AND d.key_id = v.key_id
RETURNING d.subject"""


class PostgresKeyTable(KeyTable):
    """Runs each statement through the recorder's ``query`` (its pool, its error handling);
    ``check_writable`` refuses writes to a store opened read-only."""

    def __init__(self, query: Query, schema: str, check_writable: Callable[[], None]) -> None:
        self._query, self._check_writable = query, check_writable
        name = sql.Identifier(schema)
        self._add, self._read, self._delete, self._page, self._replace = (
            sql.SQL(text).format(schema=name).as_string()
            for text in (_ADD, _READ, _DELETE, _PAGE, _REPLACE)
        )

    def read(self, subjects: Sequence[str]) -> list[StoredKey]:
        rows = self._query(self._read, (list(dict.fromkeys(subjects)),))
        return [StoredKey(*row) for row in rows]

    def add(self, keys: Sequence[StoredKey]) -> list[StoredKey]:
        self._check_writable()
        rows = self._query(self._add, _columns(keys))
        return [StoredKey(*row) for row in rows]

    def delete(self, subjects: Sequence[str]) -> int:
        self._check_writable()
        return len(self._query(self._delete, (list(set(subjects)),)))

    def page(self, after: str | None, limit: int) -> list[StoredKey]:
        rows = self._query(self._page, ("" if after is None else after, limit))
        return [StoredKey(*row) for row in rows]

    def replace(self, keys: Sequence[StoredKey]) -> int:
        self._check_writable()
        return len(self._query(self._replace, _columns(keys)))


def _columns(keys: Sequence[StoredKey]) -> tuple[list[Any], ...]:
    """The keys' columns, one array each: a batch travels in one statement."""
    return (
        [key.subject for key in keys],
        [key.key_id for key in keys],
        [key.master_key_id for key in keys],
        [bytes(key.wrapped) for key in keys],
    )
