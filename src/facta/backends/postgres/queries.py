"""Every statement of a PostgreSQL store, rendered once for its schema.

The schema name is quoted by ``psycopg.sql.Identifier``; the text then never changes, so the
server prepares it once per connection. Values always travel as parameters.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from psycopg import sql

from facta.backends.postgres.settings import MAX_NAME_BYTES
from facta.snapshots import SNAPSHOT_CANDIDATES

__all__ = ["Queries", "channel_name", "stream_lock_class"]


def channel_name(schema: str) -> str:
    """The LISTEN/NOTIFY channel of a store: ``facta:<schema>``, hashed if too long."""
    name = f"facta:{schema}"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    return "facta:" + hashlib.sha256(schema.encode()).hexdigest()[:32]


def stream_lock_class(schema: str) -> int:
    """The first key (a signed int4) of a store's stream locks; the second is the stream id's
    ``hashtext``. The two-key form keeps them apart from bigint advisory locks (projections')."""
    digest = hashlib.blake2b(f"facta.streams\0{schema}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


_COLUMNS = (
    "stream_id, version, position, transaction_id, event_id, type, schema_version, encoding,"
    " data, metadata, recorded_at"
)
# The horizon: every transaction below it has ended, or belongs to another database (and can
# write no row here), so no row can still appear below it. It is the snapshot's xmax, or its
# oldest in-progress transaction that may belong to this database: one is passed only when a
# session of another database (pg_stat_activity's backend_xid, compared on the low 32 bits)
# or a prepared transaction of another database shows it is theirs. Anything unknown counts
# as ours, so a race can delay a reader, never let it skip. The sessions are only looked at
# when transactions are in progress and this store holds rows at or past the snapshot's xmin
# (below it every transaction has ended, and xmin is as good a horizon): a reader that is not
# held back pays at most one index probe (the newest row).
_OUR_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"
_FOREIGN_XIDS = f"""
    SELECT backend_xid::text::bigint FROM pg_stat_get_activity(NULL)
    WHERE backend_xid IS NOT NULL AND datid <> {_OUR_DATABASE}
    UNION ALL
    SELECT transaction::text::bigint FROM pg_prepared_xact() WHERE dbid <> {_OUR_DATABASE}"""
# On a hot standby (pg_is_in_recovery()) the snapshot lists no in-progress transaction in xip
# (it keeps them all in subxip) and no session of its own holds one: its xmin, the oldest
# transaction the primary had not ended as far as the standby has replayed (counting ids
# assigned on the primary and not seen yet once a younger one is), is the horizon. It does
# not tell databases apart, so there a transaction in any database of the primary holds
# readers back.
_HORIZON_OF = f"""(CASE WHEN pg_is_in_recovery() THEN pg_snapshot_xmin({{snapshot}})
    ELSE least(pg_snapshot_xmax({{snapshot}}), (
    SELECT min(x) FROM pg_snapshot_xip({{snapshot}}) AS x
    WHERE (x::text::bigint & 4294967295) NOT IN ({_FOREIGN_XIDS}))) END)::text::bigint"""
_HORIZON = f"""(SELECT CASE
    WHEN pg_snapshot_xmin(s) = pg_snapshot_xmax(s)
      OR coalesce((SELECT max(transaction_id) FROM {{schema}}.facta_events), 0)
         < pg_snapshot_xmin(s)::text::bigint
    THEN pg_snapshot_xmin(s)::text::bigint
    ELSE {_HORIZON_OF.format(snapshot="s")} END
FROM pg_current_snapshot() AS s)"""
# Which transaction holds readers back: a session's, or a prepared one (no pid).
_HOLDER = """
    SELECT pid, datname, clock_timestamp() - xact_start FROM pg_stat_activity
    WHERE backend_xid::text::bigint = (h.horizon & 4294967295)
    UNION ALL
    SELECT NULL, database, clock_timestamp() - prepared FROM pg_prepared_xacts
    WHERE transaction::text::bigint = (h.horizon & 4294967295)
    LIMIT 1"""

# An append first waits for its streams: it takes a transaction-scoped advisory lock on each,
# keyed by the store (``stream_lock_class``) and the stream id's hash. An advisory lock gives
# the transaction no id, so a writer does all its waiting for streams before it gets one, and
# whoever appends to a stream after it gets a younger id: each stream's versions come in
# the global log's (transaction id, position) order (docs/design.md, "Global order").
# A single-stream append takes its lock in the claim's own FROM, before any row is touched.
_LOCKED = "FROM (SELECT pg_advisory_xact_lock({lock_class}, hashtext(%(stream)s))) AS locked"
# A multi-stream append locks them all in one statement first, in key order (no deadlocks).
_LOCK_STREAMS = """
SELECT pg_advisory_xact_lock({lock_class}, key)
FROM (SELECT DISTINCT hashtext(stream_id) AS key FROM unnest(%s::text[]) AS stream_id) AS keys
ORDER BY key"""

# How an append claims its stream; each returns the stream's row after the claim, or no row
# when the stream is not where the append expects it, is deleted, or was created as another
# aggregate type than %(aggregate)s (when that is not NULL). All take the stream's row lock.
# {row} is the new row (VALUES, or a SELECT from the lock); {lock} is empty or the lock.
_FITS = (
    "(t.deleted_at IS NULL AND (t.aggregate_type IS NULL OR %(aggregate)s::text IS NULL"
    " OR t.aggregate_type = %(aggregate)s))"
)
_CLAIM_ANY = f"""
    INSERT INTO {{schema}}.facta_streams AS t (stream_id, version, aggregate_type) {{row}}
    ON CONFLICT (stream_id) DO UPDATE SET version = t.version + excluded.version
    WHERE {_FITS}
    RETURNING t.stream_id, t.version"""
_CLAIM_NEW = """
    INSERT INTO {schema}.facta_streams (stream_id, version, aggregate_type) {row}
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING stream_id, version"""
# %(expected)s is the exact version, or -2 (STREAM_EXISTS) for any existing version.
_CLAIM_EXISTING = f"""
    UPDATE {{schema}}.facta_streams AS t SET version = t.version + %(n)s {{lock}}
    WHERE t.stream_id = %(stream)s AND %(expected)s IN (-2, t.version) AND {_FITS}
    RETURNING t.stream_id, t.version"""
_ROW = "VALUES (%(stream)s, %(n)s, %(aggregate)s)"
_LOCKED_ROW = "SELECT %(stream)s, %(n)s, %(aggregate)s " + _LOCKED
# Then the events, numbered after the claimed version; nothing runs unless the claim did.
# Arrays carry a batch in one statement; a single event goes as plain values, which psycopg
# adapts several times faster than arrays.
_WRITE = """
WITH s AS ({claim}),
w AS (
    INSERT INTO {schema}.facta_events (transaction_id, stream_id, version, event_id, type,
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
INSERT INTO {schema}.facta_events (transaction_id, stream_id, version, event_id, type,
                             schema_version, encoding, data, metadata)
SELECT pg_current_xact_id()::text::bigint, s.stream_id, s.version, %(id)s, %(type)s,
       %(sv)s, %(enc)s, %(data)b, %(meta)b
FROM s
RETURNING version, position, pg_notify({channel}, '')"""

# An append to several streams claims them all first, in stream id order (so that writers
# never deadlock), then inserts each one's events in the order of the call: that order is
# the global log's.
_INSERT = """
WITH w AS (
    INSERT INTO {schema}.facta_events (transaction_id, stream_id, version, event_id, type,
                                       schema_version, encoding, data, metadata)
    SELECT pg_current_xact_id()::text::bigint, %(stream)s, %(version)s - %(n)s + e.n,
           e.id, e.type, e.sv, e.enc, e.data, e.meta
    FROM unnest(%(ids)b::uuid[], %(types)b::text[], %(svs)b::int4[], %(encs)b::int2[],
                %(data)b::bytea[], %(meta)b::bytea[])
            WITH ORDINALITY AS e(id, type, sv, enc, data, meta, n)
    ORDER BY e.n
    RETURNING position
)
SELECT max(position), pg_notify({channel}, '') FROM w"""

# An append in a caller's transaction that had an id before it took its streams' locks: the
# first of its streams a younger transaction has written to, and that stream's version. A
# stream's rows come in transaction id order, so its youngest id is on its newest version or
# its newest marker (the lowest negative version): two index probes per stream.
_NEWER_WRITER = """
SELECT s.stream_id, coalesce((SELECT t.version FROM {schema}.facta_streams AS t
                              WHERE t.stream_id = s.stream_id), 0)
FROM unnest(%s::text[]) AS s(stream_id)
WHERE %s < ANY (ARRAY(
    (SELECT e.transaction_id FROM {schema}.facta_events AS e
     WHERE e.stream_id = s.stream_id AND e.version > 0 ORDER BY e.version DESC LIMIT 1)
    UNION ALL
    (SELECT e.transaction_id FROM {schema}.facta_events AS e
     WHERE e.stream_id = s.stream_id AND e.version < 0 ORDER BY e.version LIMIT 1)))
LIMIT 1"""
# Where a connection is: its database (name, oid) and server (its start, in microseconds),
# and its transaction's id if it has one yet.
_IDENTITY = """SELECT current_database(),
    (SELECT oid FROM pg_database WHERE datname = current_database())::bigint,
    (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint,
    pg_current_xact_id_if_assigned()::text::bigint"""

# A load's first page: no rows if the stream is deleted, was created as another aggregate
# type or truncated past where the load starts (the recorder then looks at the stream's row
# to say which), at the price of one index probe.
_REPLAY = """SELECT version, type, schema_version, encoding, data FROM {schema}.facta_events
WHERE stream_id = %s AND version BETWEEN %s AND %s {check}ORDER BY version LIMIT %s"""
_NOT_ANOTHER_TYPE = """AND NOT EXISTS (SELECT FROM {schema}.facta_streams WHERE stream_id = %s
    AND (aggregate_type <> %s OR deleted_at IS NOT NULL OR first_version > %s)) """
_STREAM_INFO = """SELECT stream_id, version, aggregate_type, deleted_at, hard_deleted,
    first_version, max_age, max_count FROM {schema}.facta_streams"""

# A snapshot in and the stream's older ones out, in one statement (one round trip, one
# commit): the SNAPSHOT_CANDIDATES newest are kept. One older than those is not written at
# all, since the DELETE cannot see the row its own statement inserts.
_WRITE_SNAPSHOT = """
WITH newest AS (
    SELECT version FROM {schema}.facta_snapshots WHERE stream_id = %s
    ORDER BY version DESC LIMIT {keep}
), written AS (
    INSERT INTO {schema}.facta_snapshots (stream_id, version, aggregate_type, schema_version,
                                          encoding, checksum, state)
    SELECT %s, %s, %s, %s, %s, %s, %b
    WHERE (SELECT count(*) FROM newest WHERE version > %s) < {keep}
    ON CONFLICT (stream_id, version) DO UPDATE SET aggregate_type = excluded.aggregate_type,
        schema_version = excluded.schema_version, encoding = excluded.encoding,
        checksum = excluded.checksum, state = excluded.state
    RETURNING version
)
DELETE FROM {schema}.facta_snapshots WHERE stream_id = %s AND version < (
    SELECT min(version) FROM (
        SELECT version FROM newest UNION SELECT version FROM written
        ORDER BY version DESC LIMIT {keep}) AS kept)"""

# Replicas: how far a standby has replayed and received the primary's WAL (NULL on a server
# that is not one), and how long ago the newest transaction it replayed committed.
_REPLICA_LAG = """SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,
    (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint,
    extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"""


class Queries(NamedTuple):
    """Every statement of one store's recorder, rendered for its schema."""

    write_any: str
    write_new: str
    write_existing: str
    write_one_any: str
    write_one_new: str
    write_one_existing: str
    claim_any: str
    claim_new: str
    claim_existing: str
    insert: str
    lock_streams: str
    stream_version: str
    stream_info: str
    stream_info_locked: str
    retained_streams: str
    lowest_marker: str
    newest_snapshot: str
    delete_events: str
    delete_snapshots: str
    forget_stream: str
    soft_delete: str
    hard_delete: str
    reopen: str
    truncate_events: str
    truncate_snapshots: str
    set_first_version: str
    set_retention: str
    read_stream: str
    replay_stream: str
    replay_stream_as: str
    read_all: str
    read_all_types: str
    read_slices: str
    read_slices_types: str
    locate: str
    streams: str
    write_snapshot: str
    read_snapshots: str
    reader_lag: str
    newest_transaction: str
    written: str
    written_ids: str
    newer_writer: str
    identity: str
    swap_search_path: str
    restore_search_path: str
    horizon: str
    commit_lsn: str
    replayed_lsn: str
    replica_lag: str
    primary_lsn: str
    listen: str
    use_schema: str

    @classmethod
    def render(cls, schema: str) -> Queries:
        schema_id = sql.Identifier(schema)
        channel = channel_name(schema)

        lock_class = sql.Literal(stream_lock_class(schema))

        def text(template: str, **parts: sql.Composable) -> str:
            return sql.SQL(template).format(schema=schema_id, **parts).as_string()

        def claim(template: str, locked: bool) -> str:
            row, lock = (_LOCKED_ROW, _LOCKED) if locked else (_ROW, "")
            return text(
                template.format(row=row, lock=lock, schema="{schema}"), lock_class=lock_class
            )

        def write(template: str, kind: str) -> str:
            parts = {"claim": sql.SQL(claim(kind, True)), "channel": sql.Literal(channel)}
            return text(template, **parts)

        read_all = (
            f"SELECT {_COLUMNS} FROM {{schema}}.facta_events WHERE (transaction_id, position) > (%s, %s)"
            f" AND transaction_id < {_HORIZON} {{types}}ORDER BY transaction_id, position LIMIT %s"
        )
        slices = "AND slice = ANY(%s::smallint[]) "  # a sliced projection's worker reads its own
        types = "AND type = ANY(%s::text[]) "
        return cls(
            write_any=write(_WRITE, _CLAIM_ANY),
            write_new=write(_WRITE, _CLAIM_NEW),
            write_existing=write(_WRITE, _CLAIM_EXISTING),
            write_one_any=write(_WRITE_ONE, _CLAIM_ANY),
            write_one_new=write(_WRITE_ONE, _CLAIM_NEW),
            write_one_existing=write(_WRITE_ONE, _CLAIM_EXISTING),
            claim_any=claim(_CLAIM_ANY, False),
            claim_new=claim(_CLAIM_NEW, False),
            claim_existing=claim(_CLAIM_EXISTING, False),
            insert=text(_INSERT, channel=sql.Literal(channel)),
            lock_streams=text(_LOCK_STREAMS, lock_class=lock_class),
            stream_version=text("SELECT version FROM {schema}.facta_streams WHERE stream_id = %s"),
            stream_info=text(_STREAM_INFO + " WHERE stream_id = %s"),
            stream_info_locked=text(_STREAM_INFO + " WHERE stream_id = %s FOR UPDATE"),
            retained_streams=text(
                _STREAM_INFO + " WHERE stream_id > %s"
                " AND (max_age IS NOT NULL OR max_count IS NOT NULL) ORDER BY stream_id LIMIT %s"
            ),
            lowest_marker=text(
                "SELECT min(version) FROM {schema}.facta_events WHERE stream_id = %s AND version < 0"
            ),
            newest_snapshot=text(
                "SELECT max(version) FROM {schema}.facta_snapshots WHERE stream_id = %s"
            ),
            delete_events=text(
                "DELETE FROM {schema}.facta_events WHERE stream_id = %s AND version > 0"
            ),
            delete_snapshots=text("DELETE FROM {schema}.facta_snapshots WHERE stream_id = %s"),
            forget_stream=text("DELETE FROM {schema}.facta_streams WHERE stream_id = %s"),
            soft_delete=text(
                "UPDATE {schema}.facta_streams SET deleted_at = now() WHERE stream_id = %s"
            ),
            hard_delete=text(
                "UPDATE {schema}.facta_streams SET deleted_at = now(), hard_deleted = true"
                " WHERE stream_id = %s"
            ),
            reopen=text("UPDATE {schema}.facta_streams SET deleted_at = NULL WHERE stream_id = %s"),
            truncate_events=text(
                "DELETE FROM {schema}.facta_events WHERE stream_id = %s AND version > 0"
                " AND version < %s"
            ),
            truncate_snapshots=text(
                "DELETE FROM {schema}.facta_snapshots WHERE stream_id = %s AND version < %s"
            ),
            set_first_version=text(
                "UPDATE {schema}.facta_streams SET first_version = %s WHERE stream_id = %s"
            ),
            set_retention=text(
                "UPDATE {schema}.facta_streams SET max_age = %s, max_count = %s WHERE stream_id = %s"
            ),
            read_stream=text(
                f"SELECT {_COLUMNS} FROM {{schema}}.facta_events WHERE stream_id = %s"
                " AND version BETWEEN %s AND %s ORDER BY version LIMIT %s"
            ),
            replay_stream=text(_REPLAY.format(schema="{schema}", check="")),
            replay_stream_as=text(_REPLAY.format(schema="{schema}", check=_NOT_ANOTHER_TYPE)),
            read_all=text(read_all, types=sql.SQL("")),
            read_all_types=text(read_all, types=sql.SQL(types)),
            read_slices=text(read_all, types=sql.SQL(slices)),
            read_slices_types=text(read_all, types=sql.SQL(slices + types)),
            locate=text(
                "SELECT event_id, stream_id, version, position FROM {schema}.facta_events"
                " WHERE event_id = ANY(%s::uuid[])"
            ),
            streams=text(
                "SELECT stream_id, version FROM {schema}.facta_streams WHERE stream_id > %s"
                " AND NOT hard_deleted AND version >= first_version ORDER BY stream_id LIMIT %s"
            ),
            write_snapshot=text(_WRITE_SNAPSHOT, keep=sql.Literal(SNAPSHOT_CANDIDATES)),
            read_snapshots=text(
                "SELECT stream_id, version, aggregate_type, schema_version, encoding, checksum,"
                " state FROM {schema}.facta_snapshots WHERE stream_id = %s"
                " ORDER BY version DESC LIMIT %s"
            ),
            # The bound at xmax changes no count (no visible row is at or past it) but gives
            # the planner a range, not a third of the table: on a large table its estimate
            # would pass jit_above_cost, and JIT compiling took 120-190 ms a call at 10M events.
            reader_lag=text(
                "SELECT (SELECT count(*) FROM {schema}.facta_events"
                " WHERE transaction_id >= h.horizon AND transaction_id < h.xmax), a.*"
                f" FROM (SELECT {_HORIZON_OF.format(snapshot='s')} AS horizon,"
                " pg_snapshot_xmax(s)::text::bigint AS xmax FROM pg_current_snapshot() AS s) AS h"
                f" LEFT JOIN LATERAL ({_HOLDER}) AS a ON h.horizon < h.xmax"
            ),
            newest_transaction=text(
                "SELECT coalesce(max(transaction_id), 0) FROM {schema}.facta_events"
                f" WHERE transaction_id >= {_HORIZON}"
            ),
            written_ids=text(
                f"SELECT {_COLUMNS} FROM {{schema}}.facta_events"
                " WHERE event_id = ANY(%s::uuid[]) ORDER BY transaction_id, position"
            ),
            newer_writer=text(_NEWER_WRITER),
            identity=_IDENTITY,
            swap_search_path=text(
                "SELECT current_setting('search_path'), set_config('search_path', {path}, true)",
                path=sql.Literal(f"{schema_id.as_string()}, public"),
            ),
            restore_search_path="SELECT set_config('search_path', %s, true)",
            horizon=text(f"SELECT {_HORIZON}"),
            commit_lsn="SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint",
            replayed_lsn="SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
            replica_lag=_REPLICA_LAG,
            primary_lsn="SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
            written=text(
                f"SELECT {_COLUMNS} FROM {{schema}}.facta_events"
                " WHERE transaction_id = pg_current_xact_id()::text::bigint ORDER BY position"
            ),
            listen=text("LISTEN {channel}", channel=sql.Identifier(channel)),
            use_schema=text("SET LOCAL search_path TO {schema}, public"),
        )
