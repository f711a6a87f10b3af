"""Repositories load aggregates (from a snapshot, then the events after it) and save them.

The async module is the source; the sync one is generated from it.

Snapshots (see :mod:`facta.snapshots`) are a cache, never the truth: one is written after a
save that crosses a multiple of the aggregate's ``snapshot_every``, from the aggregate already
in memory (the stream is not read again), and after a load that cost too much: one that
replayed ``snapshot_after_replaying`` events or more (``snapshot_every`` unless set), or that
took ``snapshot_after_seconds`` or longer. Writing one never fails a save or a load: a failure
is logged on the
``facta.snapshots`` logger. A load trusts no snapshot it cannot check and decode: it logs a
warning naming the stream and version, falls back to an older snapshot or to the whole stream,
and writes a fresh snapshot.
"""

from __future__ import annotations

import asyncio  # sync: drop
import inspect
import logging
import time
from collections.abc import Awaitable, Callable  # sync: from collections.abc import Callable
from typing import Generic, TypeVar  # sync: from typing import Any, Generic, TypeVar, cast

from facta.aggregate import Aggregate
from facta.appending import AppendResult
from facta.errors import (
    AggregateNotFound,
    ConcurrencyError,
    RetriesExhausted,
    SnapshotError,
    StoreError,
    WrongAggregateType,
)
from facta.events import Metadata, NewEvent
from facta.fresh import Fresh
from facta.ids import validate_stream_id
from facta.retrying import RetryPolicy
from facta.snapshots import SNAPSHOT_CANDIDATES, SnapshotCodec, SnapshotRecord, snapshotted
from facta.store_async import AsyncEventStore
from facta.telemetry import loaded, traced_load, traced_save, traced_snapshot
from facta.upcasting import Upcasters, default_snapshot_upcasters

__all__ = ["AsyncRepository"]

A = TypeVar("A", bound=Aggregate)
# What update() runs on the aggregate; the sync repository refuses coroutine functions.
Command = Callable[[A], Awaitable[None] | None]  # sync: Command = Callable[[A], None]
_ASYNC_COMMAND = (
    "Repository.update got an async command ({!r}); it would never run: use an "
    "AsyncRepository, or make the command a plain function"
)

logger = logging.getLogger("facta.snapshots")


class AsyncRepository(Generic[A]):
    """Loads and saves aggregates of one type in one store.

    ``snapshot_upcasters`` migrate snapshots of older snapshot schema versions (default: the
    ones registered with ``@facta.snapshot_upcaster``); ``retry`` is how :meth:`update`
    retries a command that met a concurrent write (:class:`facta.RetryPolicy`).
    """

    def __init__(
        self,
        store: AsyncEventStore,
        aggregate_type: type[A],
        *,
        snapshot_upcasters: Upcasters | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not isinstance(store, AsyncEventStore):
            raise TypeError(
                f"this repository works on an AsyncEventStore (facta.connect_async), not a "
                f"{type(store).__qualname__}"
            )
        if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
            raise TypeError(
                f"the repository's aggregate type must be a facta.Aggregate subclass, got "
                f"{aggregate_type!r}"
            )
        self.store = store
        self.aggregate_type = aggregate_type
        self.retry = RetryPolicy() if retry is None else retry
        self._every = aggregate_type.snapshot_every
        self._snapshots = (
            SnapshotCodec(aggregate_type, snapshot_upcasters)
            if snapshotted(aggregate_type)
            else None
        )
        # A load that replays this many events, or takes this long, writes a snapshot.
        self._replay_limit = aggregate_type.snapshot_after_replaying or self._every
        self._seconds_limit = aggregate_type.snapshot_after_seconds
        # The type's former names (its snapshot upcasters rename them into it): streams
        # created under them are its own.
        renames = default_snapshot_upcasters if snapshot_upcasters is None else snapshot_upcasters
        self._former_names = renames.renamed_into(aggregate_type.type_name)

    @traced_load
    async def load(
        self, aggregate_id: str, *, version: int | None = None, fresh: Fresh = False
    ) -> A:
        """The aggregate as of its latest version (or ``version``).

        Starts from the newest usable snapshot (if the aggregate type takes snapshots) and
        applies the events after it as they stream in. Raises ``AggregateNotFound`` when the
        stream holds no events, ``StreamDeleted`` when it was deleted, ``WrongAggregateType``
        when a repository of another aggregate type created it (streams of plain appends load
        as any type). Where the store reads from replicas, ``fresh`` says how fresh the
        aggregate must be (:mod:`facta.fresh`): ``True`` loads from the primary, a save's
        result from a replica that shows that save; by default any replica will do.
        """
        validate_stream_id(aggregate_id)
        started = time.perf_counter()
        aggregate, skipped = await self._from_snapshot(aggregate_id, version, fresh)
        if aggregate is None:
            aggregate = self.aggregate_type(aggregate_id)
        start = aggregate.version
        try:
            last = await self._replay(aggregate, version, self.aggregate_type.type_name, fresh)
        except WrongAggregateType as e:  # the stream may be this type's under a former name
            last = await self._replay(aggregate, version, self._former_name(e), fresh)
        if last == 0:
            raise AggregateNotFound(self.aggregate_type.type_name, aggregate_id)
        loaded(last - start, None if self._every is None else start > 0)  # for telemetry
        aggregate.version = last
        wanted = skipped or self._costly(last - start, started)
        if self._snapshots is not None and version is None and wanted:
            await self._write_snapshot(aggregate)
        return aggregate

    def _costly(self, replayed: int, started: float) -> bool:
        """Whether a load that replayed ``replayed`` events since ``started`` asks for a
        snapshot (one that replayed none has nothing to save)."""
        if not replayed:
            return False
        limit, seconds = self._replay_limit, self._seconds_limit
        if limit is not None and replayed >= limit:
            return True
        return seconds is not None and time.perf_counter() - started >= seconds

    async def _replay(self, aggregate: A, version: int | None, as_type: str, fresh: Fresh) -> int:
        """Apply the stream's events after the aggregate's version (up to ``version``); the
        last version applied. The replay refuses a deleted stream, another type's, or one
        truncated past where the aggregate is, before it applies anything."""
        return await self.store.replay_into(
            aggregate.id,
            aggregate.apply,
            aggregate.version + 1,
            version,
            aggregate_type=as_type,
            fresh=fresh,
        )

    def _former_name(self, refused: WrongAggregateType) -> str:
        """The stream's recorded type if it is a former name of this one; else re-raise."""
        if refused.recorded not in self._former_names:
            raise refused
        return refused.recorded

    async def _from_snapshot(
        self, aggregate_id: str, version: int | None, fresh: Fresh
    ) -> tuple[A | None, bool]:
        """The aggregate restored from its newest usable snapshot (at or before ``version``),
        or None; and whether an unusable snapshot was skipped on the way.

        Only the newest snapshot is fetched at first; older ones only when it is unusable.
        """
        codec = self._snapshots
        if codec is None:
            return None, False
        skipped = False
        tried = 0
        for limit in (1, SNAPSHOT_CANDIDATES) if version is None else (SNAPSHOT_CANDIDATES,):
            records = await self._read_snapshots(aggregate_id, limit, fresh)
            keys = await self.store.fetch_snapshot_keys(records[tried:])  # sealed personal fields
            for record in records[tried:]:
                if version is None or record.version <= version:
                    try:
                        return codec.decode(record, keys), skipped
                    except SnapshotError as e:
                        logger.warning("%s; skipped it, loading from older data instead", e)
                        skipped = True
            if len(records) < limit:  # the stream has no older snapshots
                break
            tried = len(records)
        return None, skipped

    async def _read_snapshots(
        self, aggregate_id: str, limit: int, fresh: Fresh
    ) -> list[SnapshotRecord]:
        """The stream's newest snapshots; none (logged) if they cannot be read: they are a
        cache, and the events alone give the aggregate."""
        try:
            return await self.store.read_snapshots(aggregate_id, limit, fresh=fresh)
        except StoreError:
            logger.warning(
                "could not read the snapshots of stream %r; loading from its events",
                aggregate_id,
                exc_info=True,
            )
            return []

    @traced_save
    async def save(
        self, aggregate: A, *, metadata: Metadata | None = None, connection: object | None = None
    ) -> AppendResult | None:
        """Append the aggregate's pending events, expecting the version it was loaded at.

        Raises ``ConcurrencyError`` (and keeps the pending events) if another writer got
        there first. A save that creates the stream records the aggregate type in it; one into
        a stream created as another type raises ``WrongAggregateType``. Returns None when there was nothing to save. A snapshot that cannot be
        stored is logged, never raised; but ``snapshot_state()`` returning something other
        than the ``snapshot_type`` is a bug, raised as ``SnapshotError`` after the events
        were saved. ``connection`` appends in the caller's open transaction
        (``store.append_many`` says how); such a save takes no snapshot, which would outlive a
        rollback: a later load takes it.
        """
        pending = aggregate.pending_events
        if not pending:
            return None
        events = pending if metadata is None else [NewEvent(e, metadata=metadata) for e in pending]
        before = aggregate.version
        try:
            result = await self.store.append(
                aggregate.id,
                events,
                before,
                aggregate_type=self.aggregate_type.type_name,
                connection=connection,
            )
        except WrongAggregateType as e:  # nothing was written: again, under the former name
            result = await self.store.append(
                aggregate.id,
                events,
                before,
                aggregate_type=self._former_name(e),
                connection=connection,
            )
        aggregate.mark_saved(result.version)
        every = self._every
        if every is not None and connection is None and result.version // every > before // every:
            await self._write_snapshot(aggregate)
        return result

    @traced_snapshot
    async def _write_snapshot(self, aggregate: A) -> None:
        """Snapshot the aggregate as it is in memory; log (never raise) a failure."""
        codec = self._snapshots
        assert codec is not None
        state = codec.state_of(aggregate)  # a wrong state is a bug: it raises
        subjects = codec.subjects(aggregate, state)
        try:  # the data keys of its personal fields, if it has some
            keys = await self.store.subject_keys(subjects)
        except Exception:
            logger.warning(
                "could not get the data keys of the personal fields of a snapshot of stream %r "
                "at version %d; it was not written",
                aggregate.id,
                aggregate.version,
                exc_info=True,
            )
            return
        record = codec.encode(aggregate, keys, state=state)
        try:
            await self.store.write_snapshot(record)
        except Exception:
            logger.warning(
                "could not write a snapshot of stream %r at version %d; loads replay the events "
                "since the previous snapshot until one is written",
                aggregate.id,
                aggregate.version,
                exc_info=True,
            )

    async def update(
        self,
        aggregate_id: str,
        command: Command[A],
        *,
        attempts: int | None = None,
        create: bool = False,
        metadata: Metadata | None = None,
        fresh: Fresh = False,
    ) -> A:
        """Load, run ``command`` on the aggregate, save; on a conflict, do it all again.

        ``command`` must decide from the aggregate's state alone (it is re-run on fresh
        state); on the async repository it may be a coroutine function. ``create`` runs it on
        a new aggregate when the stream does not exist yet. Conflicts are retried as the
        repository's ``retry`` policy says (``attempts`` overrides its number of attempts);
        then ``RetriesExhausted`` is raised.

        Where the store reads from replicas, the first load is as ``fresh`` says (any
        replica by default: the save's expected version catches a stale one), and every
        retry loads from the primary, as does a first load that finds no aggregate: a
        replica's stale state never makes a command fail or loop.
        """
        policy = self.retry
        limit = policy.attempts if attempts is None else attempts
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"attempts must be an int >= 1, got {limit!r}")
        started = time.monotonic()
        last_conflict = None
        for attempt in range(limit):
            try:
                aggregate = await self._load_for_command(aggregate_id, fresh)
            except AggregateNotFound:
                if not create:
                    raise
                aggregate = self.aggregate_type(aggregate_id)
            fresh = True  # a retry met a newer version: the primary has it
            await _run(command, aggregate)
            try:
                await self.save(aggregate, metadata=metadata)
                return aggregate
            except ConcurrencyError as conflict:
                last_conflict = conflict
            spent = time.monotonic() - started
            if attempt + 1 == limit or (policy.deadline is not None and spent > policy.deadline):
                raise RetriesExhausted(aggregate_id, attempt + 1, last_conflict, spent)
            await asyncio.sleep(policy.delay(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _load_for_command(self, aggregate_id: str, fresh: Fresh) -> A:
        """The aggregate a command runs on: as ``fresh`` says, from the primary if that
        finds none (a replica may not have the stream yet)."""
        try:
            return await self.load(aggregate_id, fresh=fresh)
        except AggregateNotFound:
            if fresh is True:
                raise
        return await self.load(aggregate_id, fresh=True)


async def _run(command: Command[A], aggregate: A) -> None:
    """Run a command on the aggregate, awaiting it if it is async."""
    outcome = command(aggregate)  # sync: outcome = cast(Any, command)(aggregate)
    if inspect.isawaitable(outcome):  # sync: if inspect.iscoroutine(outcome):
        await outcome  # sync: outcome.close()  # nothing would await it
        return  # sync: raise TypeError(_ASYNC_COMMAND.format(command))
