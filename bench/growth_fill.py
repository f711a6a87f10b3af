"""Fill a facta PostgreSQL store with millions of valid events fast, in SQL (bench/growth.py).

The store is made by facta (its migrations, its schema); the rows are written by
``INSERT ... SELECT generate_series``, server-side, with facta's indexes in place, so they grow
as appends grow them. Each row is one facta would write:

- ``transaction_id``: the filling transaction's own ``pg_current_xact_id()``, as facta's append
  writes it (committed, so below every reader's horizon), ``position`` from the table's
  identity; one transaction per chunk of about a million rows;
- ``stream_id`` and ``event_id``: UUIDv7-shaped (a millisecond time prefix, then a counter), as
  facta makes them, so both indexes grow at their right edge, as they do in use; streams of
  ``length`` events, their events interleaved (every stream's version 1, then every stream's
  version 2, ...), as concurrent aggregates interleave them in the log, which spreads the
  ``(stream_id, version)`` index's inserts over the whole index;
- ``type``, ``schema_version``, ``encoding``, ``data`` and ``metadata``: copied from a template
  stream appended through facta beforehand (the benchmark's six-field event, as facta's codec
  encoded it), cycled;
- a ``facta_streams`` row per stream, of aggregate type ``Cart``, at version ``length``.

:func:`check_filled` then loads some of the streams, and reads the log across the fill, through
facta.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import psycopg
from psycopg import sql

import facta
from bench.facta_systems import Cart

CHUNK = 1_000_000  # rows per filling transaction (at most; whole versions of every stream)

_EVENTS = """
INSERT INTO {schema}.facta_events (transaction_id, stream_id, version, event_id, type,
                                   schema_version, encoding, data, metadata)
SELECT pg_current_xact_id()::text::bigint,
       {stream_id},
       %(first_version)s + n / %(streams)s,
       (lpad(to_hex(%(event_ms)s::bigint), 12, '0')
        || lpad(to_hex(%(first_event)s::bigint + n), 20, '0'))::uuid,
       t.type, t.schema_version, t.encoding, t.data[1 + n %% cardinality(t.data)], t.metadata
FROM generate_series(0, %(rows)s - 1) AS n,
     (SELECT %(type)s::text AS type, %(schema_version)s::int AS schema_version,
             %(encoding)s::smallint AS encoding, %(data)s::bytea[] AS data,
             %(metadata)s::bytea AS metadata) AS t"""
_STREAMS = """
INSERT INTO {schema}.facta_streams (stream_id, version, aggregate_type)
SELECT {stream_id}, %(length)s, 'Cart' FROM generate_series(0, %(streams)s - 1) AS n"""
# The n-th stream of a fill: a UUIDv7-shaped string, the fill's millisecond then a counter.
_STREAM_ID = (
    "(lpad(to_hex(%(stream_ms)s::bigint), 8, '0') || '-' || substr(lpad(to_hex(%(stream_ms)s"
    "::bigint), 12, '0'), 9, 4) || '-7000-8000-' || lpad(to_hex(%(first_stream)s::bigint"
    " + n %% %(streams)s), 12, '0'))"
)


class Template:
    """What every filled event copies: one stream's rows as facta wrote them."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, stream_id: str) -> None:
        rows = conn.execute(
            sql.SQL(
                "SELECT type, schema_version, encoding, data, metadata FROM {}.facta_events"
                " WHERE stream_id = %s ORDER BY version"
            ).format(sql.Identifier(schema)),
            (stream_id,),
        ).fetchall()
        if not rows:
            raise ValueError(f"template stream {stream_id!r} has no events")
        self.type, self.schema_version, self.encoding, _, self.metadata = rows[0]
        self.data = [bytes(row[3]) for row in rows]


class Filler:
    """Adds streams of ``length`` events to a store's schema, one fill at a time."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, template: Template) -> None:
        self.conn = conn
        self.schema = sql.Identifier(schema)
        self.template = template
        self.streams = 0  # streams filled so far (their counter continues across fills)
        self.events = 0
        self.filled: list[str] = []  # a few filled stream ids, for checks

    def fill(self, events: int, length: int) -> float:
        """Add ``events`` events in streams of ``length``; the seconds it took."""
        if events % length:
            raise ValueError(f"{events:,} events do not make whole streams of {length}")
        streams = events // length
        if not streams:
            return 0.0
        started = time.perf_counter()
        stream_ms = int(time.time() * 1000)
        stream_id = sql.SQL(_STREAM_ID)
        statement = sql.SQL(_EVENTS).format(schema=self.schema, stream_id=stream_id)
        names = {"stream_ms": stream_ms, "first_stream": self.streams, "streams": streams}
        versions_per_chunk = max(1, CHUNK // streams)
        for first in range(0, length, versions_per_chunk):
            versions = min(versions_per_chunk, length - first)
            self.conn.execute(
                statement,
                {
                    **names,
                    "first_version": first + 1,
                    "event_ms": int(time.time() * 1000),
                    "first_event": self.events,
                    "rows": versions * streams,
                    "type": self.template.type,
                    "schema_version": self.template.schema_version,
                    "encoding": self.template.encoding,
                    "data": self.template.data,
                    "metadata": self.template.metadata,
                },
            )
            self.events += versions * streams
        rows = self.conn.execute(
            sql.SQL(_STREAMS + " RETURNING stream_id").format(
                schema=self.schema, stream_id=stream_id
            ),
            {**names, "length": length},
        ).fetchall()
        self.filled += [rows[0][0], rows[len(rows) // 2][0], rows[-1][0]]
        self.streams += streams
        return time.perf_counter() - started


def check_filled(store: facta.EventStore, filler: Filler, length: int, after: Any) -> None:
    """Load filled streams and read the log across the fill through facta; raise if wrong."""
    repo = facta.Repository(store, Cart)
    for stream_id in filler.filled[-3:]:
        cart = repo.load(stream_id)
        if cart.version != length or cart.items != length:
            raise AssertionError(f"filled stream {stream_id} loads as {cart.version} events")
    read = list(itertools.islice(store.read_all(after, limit=length), length))
    if len(read) != length or any(e.type != filler.template.type for e in read):
        raise AssertionError(f"read_all after the fill's start gave {len(read)} events")
