# WARNING: generated from src/facta/backends/partitioned/moving_async.py by tools/gen_sync.py; do not edit.
"""Move a partition of a partitioned store to another PostgreSQL database or server.

While the source partition's tables are locked (writers to it wait, then fail with
``LockTimeout`` if the move outlasts their ``lock_timeout``), every ``facta_*`` table is
copied to the target schema (made by the usual migrations, and empty), its identity sequences
set as far; the target's transaction ids are advanced past the last one copied, so that
events appended there sort after the copied ones and every reader's checkpoint stays valid;
the catalog records the new location; and the source schema is renamed ``<schema>_moved``,
so a process still routing to it fails instead of writing there. The home partition (the
catalog) cannot be moved this way.
"""

from __future__ import annotations

from typing import Any, Unpack

import psycopg
from psycopg import sql

from facta.backends.partitioned.catalog import move_location
from facta.backends.partitioned.recorder import PartitionedRecorder
from facta.backends.postgres.options import Options
from facta.backends.postgres.recorder import PostgresRecorder
from facta.errors import ConfigurationError, StoreError
from facta.store import EventStore

__all__ = ["move_partition"]

# The tables to copy, those that refer to others (by foreign key) after the rest.
_TABLES = """
SELECT tablename FROM pg_tables AS t WHERE schemaname = %s AND tablename LIKE 'facta\\_%%'
ORDER BY EXISTS (SELECT FROM pg_constraint
                 WHERE contype = 'f' AND conrelid = format('%%I.%%I', schemaname, tablename)::regclass),
         tablename"""
# A table's columns but the generated ones (the events' slice), which the target computes.
_STORED_COLUMNS = """
SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0
    AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"""
_COPY_OUT = sql.SQL("COPY {} ({}) TO STDOUT (FORMAT binary)")
_COPY_IN = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)")
_SEQUENCES = "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s"
# Each loop turn is a subtransaction that writes, so it takes (and gives up) a transaction id.
_BURN = """
DO $$ BEGIN
    CREATE TEMP TABLE IF NOT EXISTS facta_burn (n int);
    FOR i IN 1..{count} LOOP
        BEGIN
            INSERT INTO facta_burn VALUES (i);
            RAISE EXCEPTION 'facta_burn';
        EXCEPTION WHEN raise_exception THEN NULL;
        END;
    END LOOP;
END $$"""


def move_partition(store: EventStore, name: str, url: str, **options: Unpack[Options]) -> None:
    """Move partition ``name`` of ``store`` to the empty facta schema at ``url`` (made if
    needed); afterwards open the store with ``url`` for ``name``."""
    recorder = store.recorder
    if not isinstance(recorder, PartitionedRecorder):
        raise ConfigurationError("move_partition moves a partition of a partitioned store")
    if name not in recorder.partitions or recorder.partitions[name] is recorder.home:
        raise ConfigurationError(
            f"partition {name!r} cannot be moved: it is not one of {list(recorder.partitions)}, "
            "or it is the home partition, which keeps the catalog (copy its schema with "
            "pg_dump while the store is stopped instead)"
        )
    recorder.ready()
    source, target = recorder.partitions[name], PostgresRecorder(url, **options)
    try:
        target.migrate()
        if target.streams(None, 1):
            raise ConfigurationError(
                f"partition {name!r} cannot move to {target.location}: it "
                "holds events already; give an empty schema"
            )
        with source.connection() as src, src.transaction():
            newest = _copy(src, source.schema, target)
            _advance(target, newest)
            move_location(recorder.home, name, target.location)
            moved = sql.Identifier(f"{source.schema}_moved")
            src.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(source.schema), moved)
            )
    except psycopg.Error as e:
        target.close()
        raise StoreError(f"moving partition {name!r} to {target.location} failed: {e}") from e
    except BaseException:
        target.close()
        raise
    recorder.replace(name, target)
    source.close()


def _copy(src: Any, schema: str, target: PostgresRecorder) -> int:
    """Lock and copy every facta table of ``schema``; the newest transaction id copied."""
    cur = src.execute(_TABLES, (schema,))
    tables = [row[0] for row in cur.fetchall()]
    for table in tables:
        lock = sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(schema, table))
        src.execute(lock)
    with target.connection() as dst, dst.transaction():
        targets = [sql.Identifier(target.schema, table) for table in tables]
        dst.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(targets)))
        for table, target_table in zip(tables, targets, strict=True):
            source_table = sql.Identifier(schema, table)
            cur = src.execute(_STORED_COLUMNS, (source_table.as_string(src),))
            columns = sql.SQL(", ").join(sql.Identifier(row[0]) for row in cur.fetchall())
            copy_out = _COPY_OUT.format(source_table, columns)
            copy_in = _COPY_IN.format(target_table, columns)
            with src.cursor().copy(copy_out) as out, dst.cursor().copy(copy_in) as into:
                for data in out:
                    into.write(data)
        cur = src.execute(_SEQUENCES, (schema,))
        for sequence, last_value in cur.fetchall():
            if last_value is not None:
                setval = "SELECT setval(%s::regclass, %s)"
                name = sql.Identifier(target.schema, sequence).as_string(dst)
                dst.execute(setval, (name, last_value))
    table = sql.Identifier(schema, "facta_events")
    cur = src.execute(sql.SQL("SELECT coalesce(max(transaction_id), 0) FROM {}").format(table))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _advance(target: PostgresRecorder, newest: int) -> None:
    """Take transaction ids on the target until its next one is past ``newest``."""
    with target.connection() as dst:
        while True:
            cur = dst.execute("SELECT pg_current_xact_id()::text::bigint")
            row = cur.fetchone()
            current = int(row[0]) if row else 0
            if current > newest:
                return
            dst.execute(_BURN.format(count=min(newest - current + 1, 100_000)))
