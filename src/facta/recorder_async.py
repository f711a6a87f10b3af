"""The backend interface: a recorder stores and reads rows; the event store does the rest.

An :class:`AsyncRecorder` (or its generated sync twin ``Recorder``) is everything a backend
implements. It never encodes or decodes events and never checks the rules of an append beyond
what needs its transaction (the expected version, unique event ids): the event store
(:class:`facta.AsyncEventStore`) validates, encodes and decodes on top of any recorder. Every
method works with the named rows of :mod:`facta.records`.

A backend also keeps each projection's place, lock and dead letters
(:class:`AsyncCheckpoints`), owns its schema and migrations, and calls the inline projections
hook inside its append transaction. ``facta.testing`` holds the contract suite a recorder
must pass; ``docs/backends.md`` shows a backend bound to it.
"""

from __future__ import annotations

import abc
import asyncio  # sync: import threading, time
import contextlib  # sync: drop
import uuid
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from facta.appending import AppendResult, EncodedEvent, PreparedAppend
from facta.errors import ConfigurationError, StoreError, UnusableConnection
from facta.events import Checkpoint, RecordedEvent
from facta.lifecycle import check_load
from facta.personal.key_table_async import AsyncKeyTable
from facta.records import (
    DeadLetter,
    EventPlace,
    HeldMessage,
    InboxStream,
    ProjectionStatus,
    ReplayRow,
    SlicedStatus,
    StoredEvent,
    StreamInfo,
    StreamVersion,
)
from facta.snapshots import SnapshotRecord

if TYPE_CHECKING:
    from facta.slice_leases_async import AsyncSliceLeases

__all__ = ["AppendHook", "AsyncCheckpoints", "AsyncRecorder"]


class AppendHook(Protocol):
    """What a recorder calls inside its append transaction, before committing.

    ``events`` are the rows the append wrote, in global order; ``connection`` is the one the
    transaction runs on (None where there is none, as in memory). Raising makes the append
    fail with nothing written. A recorder whose transaction is synchronous code
    (``AsyncRecorder.sync_transactions``) calls :meth:`call`, others await
    :meth:`call_async`.
    """

    def call(self, connection: Any, events: Sequence[StoredEvent]) -> None: ...

    async def call_async(self, conn: Any, events: Sequence[StoredEvent]) -> None: ...  # sync: drop


class AsyncRecorder(abc.ABC):
    """Stores events, streams, snapshots and projection checkpoints; the backend interface.

    ``location`` names the store in messages (a file, a host and schema), never a password.
    Recorders are closed by their event store.
    """

    #: True where the append transaction runs synchronous code (a lock, a worker thread):
    #: inline projections on it are then sync ``Projection`` s, called through ``call``.
    sync_transactions: ClassVar[bool] = True

    location: str = ""

    #: The inline projections hook (see :class:`AppendHook`); None when there are none.
    on_append: AppendHook | None = None

    # -- writing ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def append(self, appends: Sequence[PreparedAppend]) -> list[AppendResult]:
        """Write every append in one transaction, or raise and write nothing.

        Each stream's events get the versions after its current one; each event the next
        global position. Raise ``ConcurrencyError`` when a stream is not at its expected
        version (``facta.appending.check_expected`` says) and ``DuplicateEventId`` when an
        event id is already stored. An append with no events writes nothing and returns the
        stream's version and position 0. Call ``on_append`` with the written rows before
        committing. An append that creates a stream records its ``aggregate_type``; an append
        with one into a stream created with another raises ``WrongAggregateType``
        (``facta.appending.check_aggregate_type``), and any append into a deleted stream
        ``StreamDeleted`` (``facta.lifecycle.check_open``), before any version check.
        """

    async def append_in_transaction(
        self, connection: object, appends: Sequence[PreparedAppend]
    ) -> list[AppendResult]:
        """:meth:`append`, on the caller's ``connection`` inside the caller's open transaction.

        The same rules and the same statements, but the transaction is the caller's: never
        commit or roll it back. Write under a savepoint, rolled back when the append raises,
        so the caller's transaction stays usable; call ``on_append`` with ``connection``.
        Raise ``UnusableConnection`` for a connection of the wrong kind, not in a
        transaction, or to another database. The default refuses every connection: a
        backend without one to share (memory) appends in its own transactions only.
        """
        raise UnusableConnection(
            f"the {self.location} store cannot append in the caller's transaction: its "
            "backend has no connection to share (connection= is for SQLite and PostgreSQL "
            "stores); nothing was written. Append without connection="
        )

    @abc.abstractmethod
    async def delete_stream(
        self, stream_id: str, expected_version: int, marker: EncodedEvent, hard: bool, reuse: bool
    ) -> AppendResult:
        """Delete a stream in one transaction (``facta.lifecycle`` describes the model).

        Check it as ``facta.lifecycle.check_deletable`` says, write ``marker`` (its version
        from ``next_marker_version``), then: soft, mark the stream deleted; hard, remove its
        events and snapshots and either mark it deleted for good or, with ``reuse``, forget
        the stream (its markers stay). Returns the stream's version and the marker's position.
        """

    @abc.abstractmethod
    async def reopen_stream(self, stream_id: str, marker: EncodedEvent) -> AppendResult:
        """Open a soft-deleted stream again (``check_reopenable``), writing ``marker``."""

    @abc.abstractmethod
    async def truncate_stream(self, stream_id: str, before: int, marker: EncodedEvent) -> int:
        """Remove the stream's events before version ``before`` and the snapshots older than
        the newest one kept, if ``facta.lifecycle.check_truncation`` allows; write ``marker``
        when anything was removed. The number of events removed."""

    @abc.abstractmethod
    async def set_retention(
        self, stream_id: str, max_age: float | None, max_count: int | None
    ) -> None:
        """Record the stream's retention (seconds, events; None: no limit). ``InvalidEvent``
        for a stream with no events."""

    @abc.abstractmethod
    async def locate(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPlace]:
        """Where each of the stored ones of ``event_ids`` is; ids not stored are left out."""

    # -- reading ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: the number of events in it, 0 if it has none."""

    @abc.abstractmethod
    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None, limit: int
    ) -> list[StoredEvent]:
        """Up to ``limit`` events of a stream from ``from_version`` (to ``to_version``,
        inclusive, if given), in version order."""

    async def replay_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int,
        aggregate_type: str | None = None,
    ) -> Sequence[ReplayRow]:
        """Like :meth:`read_stream`, only ``(version, type, schema_version, encoding, data)``.

        With ``aggregate_type`` (a load by a repository), first raise what
        ``facta.lifecycle.check_load`` says: the stream is deleted, another type's, or
        truncated past ``from_version``. The lean path of every load: a backend overrides it
        to fetch just those columns, checking the stream in the same query where it can.
        """
        if aggregate_type is not None:
            info = await self.stream_info(stream_id)
            check_load(stream_id, info, aggregate_type, from_version)
        rows = await self.read_stream(stream_id, from_version, to_version, limit)
        return [(e.version, e.type, e.schema_version, e.encoding, e.data) for e in rows]

    @abc.abstractmethod
    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        """What the store records of the stream; None when it has no events and nothing is
        recorded of it."""

    @abc.abstractmethod
    async def retained_streams(self, after: str | None, limit: int) -> list[StreamInfo]:
        """Up to ``limit`` streams with a retention, ids after ``after``, in id order."""

    @abc.abstractmethod
    async def read_all(
        self, after: Checkpoint, types: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        """Up to ``limit`` events of the global log after ``after``, in global order.

        ``types`` keeps only those type names. The order is by ``(transaction_id,
        position)``; a page must never return an event while an event that sorts before it
        may still commit (a reader would skip it), and a stream's versions must come in
        order.
        """

    @abc.abstractmethod
    async def streams(self, after: str | None, limit: int) -> list[StreamVersion]:
        """Up to ``limit`` streams holding events, ids after ``after`` (all if None), ordered by
        id in code point order (a hard-deleted stream holds none)."""

    async def last_checkpoint(self) -> Checkpoint:
        """The checkpoint of the newest event ``read_all`` can return now (``Checkpoint()``
        for an empty log): where a reader of new events only starts.

        The default pages through the whole log; a backend overrides it with one query.
        """
        last = Checkpoint()
        while page := await self.read_all(last, None, 10_000):
            last = page[-1].checkpoint
        return last

    async def wait_for_events(self, seconds: float) -> bool:
        """Wait until an append may have committed (True), or ``seconds`` pass (False).

        A hint for tailing readers, never a guarantee: read after every return. The default
        waits ``seconds`` and returns True (polling).
        """
        await asyncio.sleep(seconds)
        return True

    # -- snapshots -------------------------------------------------------------------------

    @abc.abstractmethod
    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Store a snapshot (replacing one at the same stream version), keeping only the
        stream's ``facta.snapshots.SNAPSHOT_CANDIDATES`` newest ones."""

    @abc.abstractmethod
    async def read_snapshots(self, stream_id: str, limit: int) -> list[SnapshotRecord]:
        """The stream's newest ``limit`` snapshots, newest first."""

    async def reading(self, lsn: int | None, primary: bool) -> AsyncRecorder:
        """A recorder whose reads all go to one server, fresh as asked (:mod:`facta.fresh`):
        the primary (``primary``), or a replica that has replayed WAL position ``lsn``, or
        any replica. A backend without replicas reads one server: itself (the default)."""
        return self

    # -- projections -----------------------------------------------------------------------

    @abc.abstractmethod
    def checkpoints(self, name: str) -> AsyncCheckpoints:
        """The place, lock and dead letters of projection ``name`` (not yet opened)."""

    @abc.abstractmethod
    async def projection_statuses(self) -> list[ProjectionStatus]:
        """Every projection with a checkpoint in this store, by name."""

    # -- sliced projections: optional (PostgreSQL) ------------------------------------------

    async def read_slices(
        self, after: Checkpoint, types: Sequence[str] | None, slices: Sequence[int], limit: int
    ) -> list[StoredEvent]:
        """As :meth:`read_all`, keeping only the events of streams in ``slices``
        (:func:`facta.slices.slice_of`). The default refuses: see :meth:`slice_leases`."""
        raise self._no_slices()

    def slice_leases(self, name: str, worker: str, ranges: int, ttl: float) -> AsyncSliceLeases:
        """The leases of sliced projection ``name`` for one worker (not yet opened)."""
        raise self._no_slices()

    async def sliced_statuses(self) -> list[SlicedStatus]:
        """Every sliced projection of this store, by name ([] where there can be none)."""
        return []

    def _no_slices(self) -> ConfigurationError:
        return ConfigurationError(
            f"the {type(self).__qualname__} backend ({self.location}) cannot share a projection "
            "among workers (slice ranges, leases); run it with one ProjectionRunner, or keep the "
            "store in PostgreSQL"
        )

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A write transaction on the store's database, yielding the connection inline
        projection handlers get (None where there is none). Commits on success."""

    # -- personal data ---------------------------------------------------------------------

    def key_table(self) -> AsyncKeyTable:
        """The table of subjects' data keys (see :mod:`facta.personal`), where personal data
        is sealed. A backend without one raises ``ConfigurationError`` (the default): its
        stores keep events without personal fields only."""
        raise ConfigurationError(
            f"the {type(self).__qualname__} backend ({self.location}) keeps no data keys, so "
            "its stores cannot hold events with personal fields; use a backend that implements "
            "key_table() (memory, SQLite, PostgreSQL; see docs/backends.md)"
        )

    # -- lifecycle -------------------------------------------------------------------------

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply the pending schema migrations; the numbers applied ([] when up to date)."""

    async def check_integrity(self) -> list[str]:
        """Problems the database itself reports in what it stores (damaged pages, broken
        indexes), one message each; [] when it finds none. ``facta check`` fails on each.

        The default finds none: a backend overrides it where its database can check itself
        without writing (SQLite's ``PRAGMA integrity_check``).
        """
        return []

    async def close(self) -> None:  # noqa: B027 (a hook: recorders without resources need nothing)
        """Release connections and files; the recorder cannot be used afterwards."""


class AsyncCheckpoints(abc.ABC):
    """One projection's checkpoint, lock, transactions and dead letters in a store.

    ``transactional`` is False where the read model cannot commit with the checkpoint (the
    memory store): a failed batch then keeps the effects of the events before the failure.
    """

    transactional: ClassVar[bool] = True

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    async def open(self, wait: bool, poll_interval: float) -> None:
        """Take the projection's lock (waiting for it, or raising ``ProjectionLocked``)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the lock and the connection; safe to call twice."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction on the read model's database, yielding the connection handlers get."""

    @abc.abstractmethod
    async def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        """Record that a runner is at work (``state``, the type names it reads); its checkpoint."""

    @abc.abstractmethod
    async def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None:
        """Move the checkpoint from ``before`` to ``after`` in the open transaction; raise
        ``StoreError`` if it is no longer at ``before`` (another runner moved it)."""

    @abc.abstractmethod
    async def reset(self, connection: Any) -> None:
        """Move the checkpoint back to the start of the log and drop the dead letters, in the
        open transaction."""

    @abc.abstractmethod
    async def park(self, connection: Any, event: RecordedEvent, error: str) -> None:
        """Store a failed event in the dead letters, in the open transaction."""

    @abc.abstractmethod
    async def dead_letters(self) -> list[DeadLetter]:
        """The events this projection parked, in log order."""

    @abc.abstractmethod
    async def finish(self, state: str, error: str | None = None) -> None:
        """Record how the runner ended (stopped, or failed and why)."""

    @abc.abstractmethod
    async def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        """How many events of these types the log holds after ``after``."""

    # -- inboxes (facta.publishing.Inbox): optional -----------------------------------------
    #
    # An inbox feeds messages from a broker into a read model of this store. It keeps, under
    # its name, the last version it applied of each stream of the sending store, and the
    # messages it holds back: parked ones (``error`` None) wait for their stream's earlier
    # versions; dead letters (an error) stay for a person. Backends that cannot keep them
    # leave these methods out, and an inbox on them fails when it opens, saying so.

    async def inbox_streams(
        self, connection: Any, stream_ids: Collection[str]
    ) -> dict[str, InboxStream]:
        """How far the inbox got in each of these streams (those it has seen), in the open
        transaction."""
        raise self._no_inboxes()

    async def save_inbox_streams(self, connection: Any, streams: Sequence[InboxStream]) -> None:
        """Record each stream's new version (replacing the old), and drop that stream's parked
        messages at or below it, in the open transaction."""
        raise self._no_inboxes()

    async def hold(self, connection: Any, message: HeldMessage) -> None:
        """Keep a message (parked, or a dead letter) in the open transaction. A parked message
        is unique by stream and version: the inbox never parks one twice."""
        raise self._no_inboxes()

    async def parked(self, connection: Any, stream_id: str) -> list[HeldMessage]:
        """The stream's parked messages, by version, in the open transaction."""
        raise self._no_inboxes()

    async def held(self) -> list[HeldMessage]:
        """Every message the inbox holds, parked ones and dead letters, in the order held.

        Works whether or not the checkpoints are open (``facta inbox status`` reads a running
        inbox's).
        """
        raise self._no_inboxes()

    def _no_inboxes(self) -> StoreError:
        return StoreError(
            f"{type(self).__qualname__} keeps no inbox state, so inbox {self.name!r} cannot run "
            "on this store; use a store whose backend implements inboxes (memory, SQLite, "
            "PostgreSQL)"
        )

    async def wait(self, seconds: float, stopping: asyncio.Event) -> None:
        """Return when new events may have arrived, ``stopping`` is set, or after ``seconds``."""
        with contextlib.suppress(TimeoutError):  # sync: stopping.wait(seconds)
            await asyncio.wait_for(stopping.wait(), seconds)  # sync: drop
