"""The PostgreSQL backend: a store's events, streams, snapshots and projections in one schema.

``postgresql://user@host/db?schema=NAME`` (or ``postgres://``) opens the store in schema
``NAME``, ``public`` by default. Every table facta keeps there is named ``facta_*``, so a
store can share a schema with an application's own tables. Needs psycopg and psycopg_pool
(``pip install 'facta[postgres]'``), imported when a store is opened, not before.

Options (keywords of ``facta.connect``):

- ``schema``: the schema, winning over the URL's ``?schema=``.
- ``pool_size`` (10) and ``pool_timeout`` (30 seconds): the connection pool; a call that waits
  longer for a connection raises :class:`PoolExhausted`.
- ``lock_timeout`` (5 seconds): how long a statement on the store's pooled connections (an
  append, above all) waits for a lock another session holds, such as a stream another writer
  is appending to in a long transaction; then it raises :class:`LockTimeout`, having written
  nothing. 0 or None: no limit.
- ``migrate`` (True): apply pending migrations at first use; False raises
  ``SchemaVersionError`` for an outdated schema (``facta migrate URL`` upgrades it).
- ``create`` (True): make the store if the schema holds none; False raises
  ``NotAFactaStore`` instead, creating nothing.
- ``read_only`` (False): True opens an existing, current store and never writes (sessions are
  read-only, nothing is created or migrated).
- ``replicas`` (none): URLs of hot standbys streaming from the store's server (a pool each,
  of ``pool_size``). Reads that may trail the primary go to them in turn: ``read_stream``,
  loads, snapshots, ``read_all``, ``streams``, and so subscriptions, projection runners and
  relays. Writes, checkpoints, locks, ``stream_version``, ``stream_info``, data keys and the
  idempotent-append lookup stay on the primary; a read's ``fresh=`` (:mod:`facta.fresh`) asks
  for the primary or for a replica that shows a given append. See docs/guides/replicas.md.
- ``replica_timeout`` (5 seconds): how long a ``fresh=`` read waits for a replica to replay
  the commit it must see; then ``ReplicaBehind``, or with ``replica_fallback`` (False) a read
  of the primary.
- ``commit_lsn`` (True): with replicas, each append also asks for its commit's WAL position
  (``AppendResult.lsn``; one round trip more). False leaves appends as fast as without
  replicas: a ``fresh=`` read of such a result waits for the primary's WAL position as the
  read starts instead.

The store's recorder (``store.recorder``, an :class:`~facta.backends.postgres.recorder.PostgresRecorder`)
also offers ``reader_lag()``, ``replica_lag()``, ``wait_until_readable()``,
``wait_for_events()``, ``connection()`` and its ``pool``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from facta.backends import Backend
from facta.backends.postgres.errors import LockTimeout, PoolExhausted
from facta.backends.postgres.options import Options
from facta.backends.postgres.reader_lag import ReaderLag
from facta.backends.postgres.replica_lag import ReplicaLag
from facta.errors import StoreError

if TYPE_CHECKING:
    from facta.backends.postgres.recorder import PostgresRecorder
    from facta.backends.postgres.recorder_async import AsyncPostgresRecorder

__all__ = ["LockTimeout", "Options", "PoolExhausted", "ReaderLag", "ReplicaLag", "backend"]


def _need_driver() -> None:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as e:
        raise StoreError(
            "the PostgreSQL backend needs psycopg and psycopg_pool: pip install 'facta[postgres]'"
        ) from e


def _recorder(url: str, **options: Unpack[Options]) -> PostgresRecorder:
    _need_driver()
    from facta.backends.postgres.recorder import PostgresRecorder

    return PostgresRecorder(url, **options)


def _async_recorder(url: str, **options: Unpack[Options]) -> AsyncPostgresRecorder:
    _need_driver()
    from facta.backends.postgres.recorder_async import AsyncPostgresRecorder

    return AsyncPostgresRecorder(url, **options)


backend = Backend(_recorder, _async_recorder, options=tuple(Options.__optional_keys__))
