"""The PostgreSQL store's SQL and the pure helpers its sync and async twins share.

Every statement is rendered once per store, with the schema name quoted by
``psycopg.sql.Identifier``; the text then never changes, so the server prepares it once per
connection. Values always travel as parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from facta.appending import PreparedAppend
from facta.errors import StoreError
from facta.snapshots import SNAPSHOT_CANDIDATES

__all__ = ["PoolExhausted", "Queries", "ReaderLag", "describe", "names", "split_url"]

DEFAULT_SCHEMA = "public"
_MAX_NAME_BYTES = 63  # PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1)


class PoolExhausted(StoreError):
    """No pooled connection became free in time; the message names the pool's size and timeout."""


class ReaderLag(NamedTuple):
    """How far ``read_all`` trails the events already committed, and who holds it back.

    ``read_all`` only returns events of transactions older than every transaction still open
    in the cluster, so one long transaction delays readers (never writers). ``held_back`` is
    the number of committed events readers cannot see yet; ``oldest_transaction_pid`` and
    ``oldest_transaction_age`` describe the oldest open transaction that has a transaction id
    (None when there is none, or the age when the role may not see it).
    """

    held_back: int
    oldest_transaction_pid: int | None
    oldest_transaction_age: timedelta | None


def split_url(url: str, schema: str | None = None) -> tuple[str, str]:
    """``(conninfo for libpq, schema name)``: a ``?schema=`` parameter leaves the URL.

    The ``schema`` argument wins over the URL's parameter; the default is ``public``.
    """
    if not isinstance(url, str):
        raise ValueError(f"PostgreSQL URL must be a str, got {type(url).__name__}")
    conninfo, from_url = url, None
    if "://" in url:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        names = [value for key, value in params if key == "schema"]
        if names:
            from_url = names[-1]
            query = urlencode([(k, v) for k, v in params if k != "schema"], quote_via=quote)
            conninfo = urlunsplit(parts._replace(query=query))
    name = schema if schema is not None else from_url or DEFAULT_SCHEMA
    return conninfo, check_schema_name(name)


def check_schema_name(name: object) -> str:
    """``name`` if PostgreSQL can hold it as a schema name unchanged, else ``ValueError``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"schema name must be a non-empty str without NUL, got {name!r}")
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise ValueError(
            f"schema name {name!r} is longer than PostgreSQL's {_MAX_NAME_BYTES} bytes"
        )
    return name


def describe(conninfo: str, schema: str) -> str:
    """The store's database for messages: host, port, database and schema, never a password."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:  # an unparsable URL: libpq will say what is wrong with it
        return f"schema {schema!r}"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or ''} schema {schema!r}"


def names(appends: Sequence[PreparedAppend]) -> str:
    """``stream 'a'`` or ``streams 'a', 'b', 'c' and 2 more``: for messages."""
    shown = ", ".join(repr(append.stream_id) for append in appends[:3])
    more = f" and {len(appends) - 3} more" if len(appends) > 3 else ""
    return f"stream{'s' if len(appends) > 1 else ''} {shown}{more}"


def channel_name(schema: str) -> str:
    """The LISTEN/NOTIFY channel of a store: ``facta:<schema>``, hashed if too long."""
    name = f"facta:{schema}"
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    return "facta:" + hashlib.sha256(schema.encode()).hexdigest()[:32]


_COLUMNS = (
    "stream_id, version, position, transaction_id, event_id, type, schema_version, encoding,"
    " data, metadata, recorded_at"
)
# Only transactions older than every open one: none of them can still add a row behind us.
_HORIZON = "(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"

# How an append claims its stream; each returns the stream's row after the claim, or no row
# when the stream is not where the append expects it. All take the stream's row lock.
_CLAIM_ANY = """
    INSERT INTO {schema}.streams AS t (stream_id, version) VALUES (%(stream)s, %(n)s)
    ON CONFLICT (stream_id) DO UPDATE SET version = t.version + excluded.version
    RETURNING t.stream_id, t.version"""
_CLAIM_NEW = """
    INSERT INTO {schema}.streams (stream_id, version) VALUES (%(stream)s, %(n)s)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING stream_id, version"""
# %(expected)s is the exact version, or -2 (STREAM_EXISTS) for any existing version.
_CLAIM_EXISTING = """
    UPDATE {schema}.streams SET version = version + %(n)s
    WHERE stream_id = %(stream)s AND %(expected)s IN (-2, version)
    RETURNING stream_id, version"""
# Then the events, numbered after the claimed version; nothing runs unless the claim did.
# Arrays carry a batch in one statement; a single event goes as plain values, which psycopg
# adapts several times faster than arrays.
_WRITE = """
WITH s AS ({claim}),
w AS (
    INSERT INTO {schema}.events (transaction_id, stream_id, version, event_id, type,
                                 schema_version, encoding, data, metadata)
    SELECT pg_current_xact_id()::text::bigint, s.stream_id, s.version - %(n)s + e.n,
           e.id, e.type, e.sv, e.enc, e.data, e.meta
    FROM s, unnest(%(ids)b::uuid[], %(types)b::text[], %(svs)b::int4[], %(encs)b::int2[],
                   %(data)b::bytea[], %(meta)b::bytea[])
            WITH ORDINALITY AS e(id, type, sv, enc, data, meta, n)
    ORDER BY e.n
    RETURNING position
)
SELECT s.version, (SELECT max(position) FROM w), pg_notify({channel}, '') FROM s"""
_WRITE_ONE = """
WITH s AS ({claim})
INSERT INTO {schema}.events (transaction_id, stream_id, version, event_id, type,
                             schema_version, encoding, data, metadata)
SELECT pg_current_xact_id()::text::bigint, s.stream_id, s.version, %(id)s, %(type)s,
       %(sv)s, %(enc)s, %(data)b, %(meta)b
FROM s
RETURNING version, position, pg_notify({channel}, '')"""


class Queries(NamedTuple):
    """Every statement of one store, rendered for its schema."""

    write_any: str
    write_new: str
    write_existing: str
    write_one_any: str
    write_one_new: str
    write_one_existing: str
    stream_version: str
    read_stream: str
    replay_stream: str
    read_all: str
    read_all_types: str
    locate: str
    streams: str
    write_snapshot: str
    prune_snapshots: str
    read_snapshots: str
    reader_lag: str
    newest_transaction: str
    written: str
    horizon: str
    listen: str

    @classmethod
    def render(cls, schema: str) -> Queries:
        schema_id = sql.Identifier(schema)
        channel = channel_name(schema)

        def text(template: str, **parts: sql.Composable) -> str:
            return sql.SQL(template).format(schema=schema_id, **parts).as_string()

        def write(claim: str, template: str = _WRITE) -> str:
            return text(template, claim=sql.SQL(text(claim)), channel=sql.Literal(channel))

        read_all = (
            f"SELECT {_COLUMNS} FROM {{schema}}.events WHERE (transaction_id, position) > (%s, %s)"
            f" AND transaction_id < {_HORIZON} {{types}}ORDER BY transaction_id, position LIMIT %s"
        )
        return cls(
            write_any=write(_CLAIM_ANY),
            write_new=write(_CLAIM_NEW),
            write_existing=write(_CLAIM_EXISTING),
            write_one_any=write(_CLAIM_ANY, _WRITE_ONE),
            write_one_new=write(_CLAIM_NEW, _WRITE_ONE),
            write_one_existing=write(_CLAIM_EXISTING, _WRITE_ONE),
            stream_version=text("SELECT version FROM {schema}.streams WHERE stream_id = %s"),
            read_stream=text(
                f"SELECT {_COLUMNS} FROM {{schema}}.events WHERE stream_id = %s"
                " AND version BETWEEN %s AND %s ORDER BY version LIMIT %s"
            ),
            replay_stream=text(
                "SELECT version, type, schema_version, encoding, data FROM {schema}.events"
                " WHERE stream_id = %s AND version BETWEEN %s AND %s ORDER BY version LIMIT %s"
            ),
            read_all=text(read_all, types=sql.SQL("")),
            read_all_types=text(read_all, types=sql.SQL("AND type = ANY(%s::text[]) ")),
            locate=text(
                "SELECT event_id, stream_id, version, position FROM {schema}.events"
                " WHERE event_id = ANY(%s::uuid[])"
            ),
            streams=text(
                "SELECT stream_id, version FROM {schema}.streams WHERE stream_id > %s"
                " ORDER BY stream_id LIMIT %s"
            ),
            write_snapshot=text(
                "INSERT INTO {schema}.snapshots (stream_id, version, aggregate_type,"
                " schema_version, encoding, checksum, state) VALUES (%s, %s, %s, %s, %s, %s, %b)"
                " ON CONFLICT (stream_id, version) DO UPDATE SET"
                " aggregate_type = excluded.aggregate_type,"
                " schema_version = excluded.schema_version, encoding = excluded.encoding,"
                " checksum = excluded.checksum, state = excluded.state"
            ),
            prune_snapshots=text(
                "DELETE FROM {schema}.snapshots WHERE stream_id = %s AND version < (SELECT version"
                " FROM {schema}.snapshots WHERE stream_id = %s ORDER BY version DESC"
                f" LIMIT 1 OFFSET {SNAPSHOT_CANDIDATES - 1})"
            ),
            read_snapshots=text(
                "SELECT stream_id, version, aggregate_type, schema_version, encoding, checksum,"
                " state FROM {schema}.snapshots WHERE stream_id = %s"
                " ORDER BY version DESC LIMIT %s"
            ),
            reader_lag=text(
                f"SELECT (SELECT count(*) FROM {{schema}}.events WHERE transaction_id >= {_HORIZON}),"
                " a.pid, clock_timestamp() - a.xact_start"
                " FROM (SELECT 1) AS one LEFT JOIN LATERAL ("
                " SELECT pid, xact_start FROM pg_stat_activity"
                " WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
                " ORDER BY age(backend_xid) DESC LIMIT 1) AS a ON true"
            ),
            newest_transaction=text(
                "SELECT coalesce(max(transaction_id), 0) FROM {schema}.events"
                f" WHERE transaction_id >= {_HORIZON}"
            ),
            horizon=f"SELECT {_HORIZON}",
            written=text(
                f"SELECT {_COLUMNS} FROM {{schema}}.events"
                " WHERE transaction_id = pg_current_xact_id()::text::bigint ORDER BY position"
            ),
            listen=text("LISTEN {channel}", channel=sql.Identifier(channel)),
        )
