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

from facta.backends.partitioned.catalog_async import move_location
from facta.backends.partitioned.recorder_async import AsyncPartitionedRecorder
from facta.backends.postgres.options import Options
from facta.backends.postgres.recorder_async import AsyncPostgresRecorder
from facta.errors import ConfigurationError, StoreError
from facta.store_async import AsyncEventStore

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


async def move_partition(
    store: AsyncEventStore, name: str, url: str, **options: Unpack[Options]
) -> None:
    """Move partition ``name`` of ``store`` to the empty facta schema at ``url`` (made if
    needed); afterwards open the store with ``url`` for ``name``."""
    recorder = store.recorder
    if not isinstance(recorder, AsyncPartitionedRecorder):
        raise ConfigurationError("move_partition moves a partition of a partitioned store")
    if name not in recorder.partitions or recorder.partitions[name] is recorder.home:
        raise ConfigurationError(
            f"partition {name!r} cannot be moved: it is not one of {list(recorder.partitions)}, "
            "or it is the home partition, which keeps the catalog (copy its schema with "
            "pg_dump while the store is stopped instead)"
        )
    await recorder.ready()
    source, target = recorder.partitions[name], AsyncPostgresRecorder(url, **options)
    try:
        await target.migrate()
        if await target.streams(None, 1):
            raise ConfigurationError(
                f"partition {name!r} cannot move to {target.location}: it "
                "holds events already; give an empty schema"
            )
        async with source.connection() as src, src.transaction():
            newest = await _copy(src, source.schema, target)
            await _advance(target, newest)
            await move_location(recorder.home, name, target.location)
            moved = sql.Identifier(f"{source.schema}_moved")
            await src.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(source.schema), moved)
            )
    except psycopg.Error as e:
        await target.close()
        raise StoreError(f"moving partition {name!r} to {target.location} failed: {e}") from e
    except BaseException:
        await target.close()
        raise
    recorder.replace(name, target)
    await source.close()


async def _copy(src: Any, schema: str, target: AsyncPostgresRecorder) -> int:
    """Lock and copy every facta table of ``schema``; the newest transaction id copied."""
    cur = await src.execute(_TABLES, (schema,))
    tables = [row[0] for row in await cur.fetchall()]
    for table in tables:
        lock = sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(schema, table))
        await src.execute(lock)
    async with target.connection() as dst, dst.transaction():
        targets = [sql.Identifier(target.schema, table) for table in tables]
        await dst.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(targets)))
        for table, target_table in zip(tables, targets, strict=True):
            source_table = sql.Identifier(schema, table)
            cur = await src.execute(_STORED_COLUMNS, (source_table.as_string(src),))
            columns = sql.SQL(", ").join(sql.Identifier(row[0]) for row in await cur.fetchall())
            copy_out = _COPY_OUT.format(source_table, columns)
            copy_in = _COPY_IN.format(target_table, columns)
            async with src.cursor().copy(copy_out) as out, dst.cursor().copy(copy_in) as into:
                async for data in out:
                    await into.write(data)
        cur = await src.execute(_SEQUENCES, (schema,))
        for sequence, last_value in await cur.fetchall():
            if last_value is not None:
                setval = "SELECT setval(%s::regclass, %s)"
                name = sql.Identifier(target.schema, sequence).as_string(dst)
                await dst.execute(setval, (name, last_value))
    table = sql.Identifier(schema, "facta_events")
    cur = await src.execute(
        sql.SQL("SELECT coalesce(max(transaction_id), 0) FROM {}").format(table)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _advance(target: AsyncPostgresRecorder, newest: int) -> None:
    """Take transaction ids on the target until its next one is past ``newest``."""
    async with target.connection() as dst:
        while True:
            cur = await dst.execute("SELECT pg_current_xact_id()::text::bigint")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
            if current > newest:
                return
            await dst.execute(_BURN.format(count=min(newest - current + 1, 100_000)))
