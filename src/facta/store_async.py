"""The event store: the rules and the codec on top of any recorder (a backend).

The store validates and encodes what is appended, tells an idempotent retry from a conflict,
pages through what is read and decodes it; its recorder (:mod:`facta.recorder_async`) only
stores and fetches rows. The sync twin (``store.py``) is generated from this module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, NoReturn, Self  # sync: from typing import Any, Self

from facta.appending import (
    AppendResult,
    EncodedEvent,
    ExpectedVersion,
    PreparedAppend,
    StreamAppend,
    is_event_sequence,
)
from facta.codec import PLAIN, Codec
from facta.context import ambient
from facta.errors import (
    ConcurrencyError,
    DecodeError,
    DuplicateEventId,
    InvalidCheckpoint,
    InvalidEvent,
    StoreError,
    UnknownEventType,
    UpcastError,
)
from facta.events import EMPTY_METADATA, Checkpoint, Metadata, NewEvent, RecordedEvent
from facta.fresh import Fresh, where
from facta.ids import uuid7, validate_stream_id
from facta.lifecycle import (
    Deleted,
    Pruned,
    Reopened,
    Truncated,
    check_before,
    register_markers,
)
from facta.personal.data_keys import DataKeys
from facta.personal.keychain_async import DEFAULT_CACHE_SECONDS, AsyncKeychain
from facta.personal.providers import KeyProvider
from facta.personal.sealing import SEALED
from facta.read_ahead import read_ahead  # sync: drop
from facta.recorder_async import AsyncRecorder
from facta.records import ReplayRow, StoredEvent, StreamInfo, StreamVersion
from facta.snapshots import SnapshotRecord
from facta.subscriptions_async import AsyncSubscription
from facta.telemetry import traced_append, traceparent

__all__ = ["DEFAULT_BATCH_SIZE", "AsyncEventStore"]

DEFAULT_BATCH_SIZE = 1000
_NOT_DECODED = object()  # replay_into: a row the fast decoder did not take


class AsyncEventStore:
    """Append-only streams of events, and the global log of all of them.

    ``facta.connect_async(url)`` makes one with the recorder of the URL's backend. Stores are
    context managers; ``close()`` releases the recorder's connections. ``keys`` is the key
    provider that personal fields need (:mod:`facta.personal`); their data keys are cached
    for ``key_cache_seconds``.
    """

    def __init__(
        self,
        recorder: AsyncRecorder,
        codec: Codec | None = None,
        keys: KeyProvider | None = None,
        *,
        key_cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        if not isinstance(recorder, AsyncRecorder):
            raise TypeError(
                f"an AsyncEventStore records through an AsyncRecorder, not a "
                f"{type(recorder).__qualname__}"
            )
        self.recorder = recorder
        self.codec = codec or Codec()
        register_markers(self.codec.registry)  # deletions and truncations leave these
        self._keychain = AsyncKeychain(recorder, keys, cache_seconds=key_cache_seconds)
        self._closed = False

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int,
        *,
        aggregate_type: str | None = None,
        connection: object | None = None,
    ) -> AppendResult:
        """Append events to one stream, atomically, if it is at ``expected_version``.

        Every append states what it expects: an exact version, ``facta.NO_STREAM``,
        ``facta.STREAM_EXISTS``, or ``facta.ANY`` where any version will do (the concurrency
        check is then off, so say so). Events are registered event objects or
        :class:`NewEvent` wrappers. Raises
        ``ConcurrencyError`` (nothing written) when the stream is elsewhere; re-appending events
        whose ids are already stored there returns ``already_appended=True``.
        ``aggregate_type`` (repositories give theirs) is recorded if the append creates the
        stream; a stream created with another one raises ``WrongAggregateType``.
        ``connection`` appends in the caller's open transaction instead of one of the
        store's own (see :meth:`append_many`).
        """
        append = StreamAppend(stream_id, events, expected_version, aggregate_type)
        results = await self.append_many([append], connection=connection)
        return results[0]

    @traced_append
    async def append_many(
        self, appends: Sequence[StreamAppend], *, connection: object | None = None
    ) -> list[AppendResult]:
        """Append to several streams in one transaction: all of them are written, or none.

        With ``connection`` (SQLite: a ``sqlite3.Connection`` to the store's file; PostgreSQL:
        the psycopg connection of the store's kind, sync or async, to its database) the
        transaction is the caller's, open on that connection: facta writes under a savepoint,
        runs the inline projections on that connection, and never commits or rolls it back.
        The events are stored if and when the caller commits. A refused append leaves the
        caller's transaction usable; ``TransactionConflict`` says it must run again.
        """
        self._check_open()
        keys = await self._keychain.for_appends(appends)  # personal fields: their subjects' keys
        prepared = [self._prepare(*append, keys=keys) for append in appends]
        seen: set[str] = set()
        for append in prepared:
            if append.stream_id in seen:
                raise InvalidEvent(
                    f"stream {append.stream_id!r} appears twice in one append_many call; "
                    "put its events in one StreamAppend"
                )
            seen.add(append.stream_id)
        try:
            if keys is None:
                return await self._record(prepared, connection)
            with self._keychain.appending(keys):  # inline projections decode with these keys
                return await self._record(prepared, connection)
        except (ConcurrencyError, DuplicateEventId):
            results = await self._already_appended(prepared)
            if results is None:
                raise
            return results

    async def _record(
        self, prepared: list[PreparedAppend], connection: object | None
    ) -> list[AppendResult]:
        if connection is None:
            return await self.recorder.append(prepared)
        return await self.recorder.append_in_transaction(connection, prepared)

    def _prepare(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int,
        aggregate_type: str | None = None,
        *,
        keys: DataKeys | None = None,
    ) -> PreparedAppend:
        validate_stream_id(stream_id)
        if aggregate_type is not None and (
            not isinstance(aggregate_type, str) or not aggregate_type
        ):
            raise InvalidEvent(
                f"aggregate type for stream {stream_id!r} must be a non-empty str or None, "
                f"got {aggregate_type!r}"
            )
        if not is_event_sequence(events):
            raise InvalidEvent(
                f"events for stream {stream_id!r} must be a sequence of events, "
                f"got {type(events).__name__}"
            )
        _check_expected_version(stream_id, expected_version)
        codec = self.codec
        fill = ambient(traceparent())  # correlation, causation, trace: from the context
        encoded = []
        for item in events:
            if isinstance(item, NewEvent):
                data, event_id, metadata = item.data, item.event_id, item.metadata
                if not isinstance(event_id, uuid.UUID):
                    raise InvalidEvent(f"event id must be a UUID, got {event_id!r}")
            else:
                data, event_id, metadata = item, uuid7(), EMPTY_METADATA
            type_name, version, encoding, payload = (
                codec.encode(stream_id, data)
                if keys is None
                else codec.encode(stream_id, data, keys)
            )
            encoded.append(
                EncodedEvent(
                    event_id,
                    type_name,
                    version,
                    encoding,
                    payload,
                    codec.encode_metadata(
                        stream_id, metadata if fill is None else fill(metadata), type_name
                    ),
                )
            )
        return PreparedAppend(stream_id, int(expected_version), encoded, aggregate_type)

    async def _already_appended(self, prepared: list[PreparedAppend]) -> list[AppendResult] | None:
        """Results for an append whose events are all stored already, in order; else None."""
        ids = [event.event_id for append in prepared for event in append.events]
        if not ids:
            return None
        found = await self.recorder.locate(ids)
        results = []
        for append in prepared:
            places = [found.get(event.event_id) for event in append.events]
            if not places:
                return None
            first = places[0]
            if first is None:
                return None
            stream_id, version, _ = first
            expected = append.expected_version
            if stream_id != append.stream_id or (expected >= 0 and version != expected + 1):
                return None
            for offset, place in enumerate(places):
                if place is None or place[:2] != (stream_id, version + offset):
                    return None
            last = places[-1]
            assert last is not None
            results.append(AppendResult(stream_id, last[1], last[2], already_appended=True))
        return results

    # -- reading ---------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        fresh: Fresh = False,
    ) -> AsyncIterator[RecordedEvent]:
        """Yield a stream's events from ``from_version`` to ``to_version`` (inclusive).

        Events are fetched ``batch_size`` at a time, so memory stays bounded whatever the
        stream's length. A missing stream yields nothing. ``fresh`` says how fresh the read
        must be where the store reads from replicas (:mod:`facta.fresh`): ``True`` reads the
        primary, an append's result a replica that shows that append.
        """
        validate_stream_id(stream_id)
        _check_batch_size(batch_size)
        self._check_open()
        decode = self.decode
        recorder = await self.recorder.reading(*where(fresh))
        while to_version is None or from_version <= to_version:
            rows = await recorder.read_stream(stream_id, from_version, to_version, batch_size)
            keys = await self.fetch_keys(rows)
            for row in rows:
                yield decode(row, keys)
            if len(rows) < batch_size:
                return
            from_version = rows[-1].version + 1

    async def replay_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        aggregate_type: str | None = None,
        fresh: Fresh = False,
    ) -> AsyncIterator[list[tuple[int, Any]]]:
        """Yield a stream's events as pages of ``(version, event)``: the lean path of a load.

        Only what a replay needs is fetched and decoded (no envelope, metadata, ids or times),
        one page of ``batch_size`` at a time. With ``aggregate_type``, a stream created with
        another aggregate type raises ``WrongAggregateType`` before any page. ``fresh`` as
        :meth:`read_stream` says.
        """
        decode = self.codec.decode
        pages = self._replay_rows(
            stream_id, from_version, to_version, batch_size, aggregate_type, fresh
        )
        async for rows in pages:
            page = []
            keys = None
            for version, type_name, schema_version, encoding, data in rows:
                try:
                    if encoding < SEALED:
                        page.append((version, decode(type_name, schema_version, encoding, data)))
                        continue
                    if keys is None:  # sealed personal fields: the page's keys, once
                        keys = await self._keychain.for_rows((r[3], r[4]) for r in rows)
                    event = decode(type_name, schema_version, encoding, data, keys=keys)
                    page.append((version, event))
                except (DecodeError, UnknownEventType, UpcastError) as e:
                    raise type(e)(f"stream {stream_id!r} version {version}: {e}") from e
            if page:
                yield page

    async def replay_into(
        self,
        stream_id: str,
        apply: Callable[[Any], object],
        from_version: int = 1,
        to_version: int | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        aggregate_type: str | None = None,
        fresh: Fresh = False,
    ) -> int:
        """``apply(event)`` for each of a stream's events, in order; the last version applied
        (``from_version - 1`` if none). What a repository's load does.

        As :meth:`replay_stream`, but each event is applied as soon as it is decoded and
        dropped once applied: a long replay keeps no page of decoded events alive, which
        would otherwise be walked again and again by Python's garbage collector. ``fresh``
        as :meth:`read_stream` says.
        """
        codec = self.codec
        decode = codec.decode
        known: dict[str, tuple[int, Callable[[bytes], Any] | None]] = {}
        generation = codec.registry.generation
        last = from_version - 1
        pages = self._replay_rows(
            stream_id, from_version, to_version, batch_size, aggregate_type, fresh
        )
        async for rows in pages:
            if generation != codec.registry.generation:  # a class was (re)registered
                known, generation = {}, codec.registry.generation
            keys = None
            for version, type_name, schema_version, encoding, data in rows:
                if encoding >= SEALED:  # sealed personal fields: the page's keys, once
                    if keys is None:
                        keys = await self._keychain.for_rows((r[3], r[4]) for r in rows)
                    try:
                        apply(decode(type_name, schema_version, encoding, data, keys=keys))
                    except (DecodeError, UnknownEventType, UpcastError) as e:
                        raise type(e)(f"stream {stream_id!r} version {version}: {e}") from e
                    continue
                fast = known.get(type_name)
                if fast is None:
                    fast = known[type_name] = codec.fast_decoder(type_name)
                event = _NOT_DECODED
                if schema_version == fast[0] and encoding == PLAIN:
                    try:
                        event = fast[1](data)  # type: ignore[misc]  # not None at that version
                    except Exception:  # decode below says what is wrong
                        event = _NOT_DECODED
                if event is _NOT_DECODED:
                    try:
                        event = decode(type_name, schema_version, encoding, data)
                    except (DecodeError, UnknownEventType, UpcastError) as e:
                        raise type(e)(f"stream {stream_id!r} version {version}: {e}") from e
                apply(event)
            if rows:
                last = rows[-1][0]
        return last

    async def _replay_rows(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        batch_size: int,
        aggregate_type: str | None,
        fresh: Fresh,
    ) -> AsyncIterator[Sequence[ReplayRow]]:
        """The recorder's replay pages of a stream, as stored (undecoded).

        The async store asks for the next page before it yields this one, so that the
        database works on it while this one is decoded and applied.
        """
        validate_stream_id(stream_id)
        _check_batch_size(batch_size)
        self._check_open()
        if to_version is not None and from_version > to_version:
            return
        fetch = (await self.recorder.reading(*where(fresh))).replay_stream
        rows = await fetch(stream_id, from_version, to_version, batch_size, aggregate_type)
        # aggregate_type: the first page has checked it
        while len(rows) == batch_size and (to_version is None or rows[-1][0] < to_version):
            after = rows[-1][0] + 1
            ahead = read_ahead(fetch(stream_id, after, to_version, batch_size, None))  # sync: drop
            yield rows
            rows = await ahead  # sync: rows = fetch(stream_id, after, to_version, batch_size, None)
        yield rows

    async def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        types: Collection[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        fresh: Fresh = False,
        slices: Collection[int] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Yield the global log in order, after ``after`` (its start by default).

        No event is ever skipped or repeated, even when writers commit out of order; resume
        from the last event's ``checkpoint``. ``types`` keeps only events of those type names
        (others are not decoded at all); ``slices`` only events of streams in those slices
        (:func:`facta.slices.slice_of`; PostgreSQL only). ``fresh`` as :meth:`read_stream`
        says (a fresh replica still returns an event only once every older transaction has
        ended).
        """
        _check_batch_size(batch_size)
        _check_checkpoint(after)
        self._check_open()
        checkpoint = after or Checkpoint()
        type_names = None if types is None else tuple(sorted(set(types)))
        slice_list = None if slices is None else sorted(set(slices))
        decode, decode_metadata = _data_decoder(self.codec), self.codec.decode_metadata
        recorder = await self.recorder.reading(*where(fresh))
        remaining = limit
        while remaining is None or remaining > 0:
            page = batch_size if remaining is None else min(batch_size, remaining)
            if slice_list is None:
                rows = await recorder.read_all(checkpoint, type_names, page)
            else:
                rows = await recorder.read_slices(checkpoint, type_names, slice_list, page)
            keys = await self.fetch_keys(rows)
            if keys is not None:  # sealed personal fields: decode opens them
                for row in rows:
                    yield self.decode(row, keys)
            else:
                for row in rows:  # as self.decode(row) does, with the decoders looked up once
                    stream_id, version, position, transaction_id, event_id, type_name = row[:6]
                    try:
                        event = RecordedEvent(
                            stream_id,
                            version,
                            position,
                            event_id,
                            type_name,
                            row[6],
                            decode(type_name, row[6], row[7], row[8]),
                            decode_metadata(row[9]),
                            row[10],
                            transaction_id,
                        )
                    except (DecodeError, UnknownEventType, UpcastError) as e:
                        raise type(e)(
                            f"stream {stream_id!r} version {version} (position {position}): {e}"
                        ) from e
                    yield event
            if len(rows) < page:
                return
            checkpoint = rows[-1].checkpoint
            if remaining is not None:
                remaining -= len(rows)

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        name: str | None = None,
        types: Collection[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 1.0,
        wait: bool = False,
    ) -> AsyncSubscription:
        """Follow the global log: the events after ``after``, then each new one as it commits.

        Use the subscription as a context manager and iterate over it; it never ends on its
        own (close it, or break). ``name`` makes it durable: it resumes after the checkpoint
        stored under that name, which :meth:`AsyncSubscription.ack` moves (one subscription
        per name at a time: another raises ``ProjectionLocked``, or waits with ``wait=True``).
        ``types`` keeps only those type names; ``poll_interval`` bounds the wait when a
        wake-up is missed.
        """
        _check_batch_size(batch_size)
        _check_checkpoint(after)
        self._check_open()
        return AsyncSubscription(
            self,
            after=after,
            types=types,
            batch_size=batch_size,
            name=name,
            poll_interval=poll_interval,
            wait=wait,
        )

    def decode(self, row: StoredEvent, keys: DataKeys | None = None) -> RecordedEvent:
        """A stored event, decoded with the store's codec (upcast, typed): as every read does.

        Sealed personal fields open with ``keys`` (from :meth:`fetch_keys`; without them, with
        the keys cached or being appended). Raises ``DecodeError``, ``UnknownEventType`` or
        ``UpcastError`` naming its place.
        """
        (
            stream_id,
            version,
            position,
            transaction_id,
            event_id,
            type_name,
            schema_version,
            encoding,
            data,
            metadata,
            recorded_at,
        ) = row
        codec = self.codec
        try:
            return RecordedEvent(
                stream_id,
                version,
                position,
                event_id,
                type_name,
                schema_version,
                codec.decode(type_name, schema_version, encoding, data)
                if encoding < SEALED
                else codec.decode(
                    type_name, schema_version, encoding, data, keys=self._keychain.known(keys)
                ),
                codec.decode_metadata(metadata),
                recorded_at,
                transaction_id,
            )
        except (DecodeError, UnknownEventType, UpcastError) as e:
            raise type(e)(
                f"stream {stream_id!r} version {version} (position {position}): {e}"
            ) from e

    async def streams(
        self, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> AsyncIterator[StreamVersion]:
        """Yield ``(stream_id, version)`` for every stream, ordered by stream id."""
        _check_batch_size(batch_size)
        self._check_open()
        after = None
        while True:
            page = await self.recorder.streams(after, batch_size)
            for item in page:
                yield item
            if len(page) < batch_size:
                return
            after = page[-1].stream_id

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: the number of events in it, 0 if it has none."""
        validate_stream_id(stream_id)
        self._check_open()
        return await self.recorder.stream_version(stream_id)

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        """What the store records of a stream (its version, aggregate type, deletion,
        truncation and retention), or None for a stream with no events and no record."""
        validate_stream_id(stream_id)
        self._check_open()
        return await self.recorder.stream_info(stream_id)

    # -- lifecycle (facta.lifecycle describes the model) ------------------------------------

    async def delete_stream(
        self,
        stream_id: str,
        expected_version: int,
        *,
        hard: bool = False,
        reuse: bool = False,
        reason: str | None = None,
        metadata: Metadata | None = None,
    ) -> AppendResult:
        """Delete a stream that is at ``expected_version`` (or ``ANY``, ``STREAM_EXISTS``).

        Soft by default: its events stay for audit, loads raise ``StreamDeleted`` and appends
        are refused until :meth:`reopen_stream`. ``hard`` removes its events and snapshots;
        ``reuse`` (with ``hard``) then frees the id: loads raise ``AggregateNotFound`` and an
        append starts the stream anew at version 1. Either way a ``facta.lifecycle.Deleted``
        marker takes the deletion's place in the global log. Returns the stream's version and
        the marker's position.
        """
        validate_stream_id(stream_id)
        _check_expected_version(stream_id, expected_version)
        if expected_version == ExpectedVersion.NO_STREAM:
            raise InvalidEvent(
                f"delete_stream({stream_id!r}) expects NO_STREAM: a stream with no events "
                "cannot be deleted"
            )
        if reuse and not hard:
            raise InvalidEvent(
                f"delete_stream({stream_id!r}, reuse=True) needs hard=True: a soft-deleted "
                "stream keeps its events, so its id cannot start anew"
            )
        marker = self._marker(stream_id, Deleted(bool(hard), bool(reuse), reason), metadata)
        return await self.recorder.delete_stream(
            stream_id, int(expected_version), marker, bool(hard), bool(reuse)
        )

    async def reopen_stream(
        self, stream_id: str, *, reason: str | None = None, metadata: Metadata | None = None
    ) -> AppendResult:
        """Open a soft-deleted stream again (a ``facta.lifecycle.Reopened`` marker records it);
        ``InvalidEvent`` for a stream that is not deleted or was hard-deleted."""
        validate_stream_id(stream_id)
        marker = self._marker(stream_id, Reopened(reason), metadata)
        return await self.recorder.reopen_stream(stream_id, marker)

    async def truncate_stream(self, stream_id: str, before: int) -> int:
        """Remove the stream's events before version ``before``; how many were removed.

        A stream created by a repository keeps what its loads need: ``before`` may be at most
        its newest snapshot's version + 1 (``InvalidEvent`` says so otherwise). A
        ``facta.lifecycle.Truncated`` marker records a truncation that removed anything.
        """
        validate_stream_id(stream_id)
        check_before(before)
        marker = self._marker(stream_id, Truncated(before), None)
        return await self.recorder.truncate_stream(stream_id, before, marker)

    async def set_retention(
        self,
        stream_id: str,
        *,
        max_age: timedelta | float | None = None,
        max_count: int | None = None,
    ) -> None:
        """Keep only the stream's events younger than ``max_age`` (a timedelta or seconds)
        and its ``max_count`` newest ones; None lifts a limit. Applied by :meth:`prune`
        (``facta prune URL``), never by an append."""
        validate_stream_id(stream_id)
        seconds = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0
        ):
            raise InvalidEvent(f"max_age must be a positive timedelta or seconds, got {max_age!r}")
        if max_count is not None and (
            isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1
        ):
            raise InvalidEvent(f"max_count must be an int >= 1 or None, got {max_count!r}")
        self._check_open()
        await self.recorder.set_retention(
            stream_id, None if seconds is None else float(seconds), max_count
        )

    async def prune(self, *, now: datetime | None = None) -> list[Pruned]:
        """Apply every stream's retention: truncate what it no longer keeps (never what a
        load needs: see :meth:`truncate_stream`). What was done, stream by stream."""
        self._check_open()
        now = datetime.now(UTC) if now is None else now
        done, after = [], None
        while page := await self.recorder.retained_streams(after, DEFAULT_BATCH_SIZE):
            for info in page:
                if info.deleted_at is None:
                    done.append(await self._prune(info, now))
            after = page[-1].stream_id
        return [p for p in done if p.removed or p.held_back]

    async def _prune(self, info: StreamInfo, now: datetime) -> Pruned:
        """Truncate one stream as its retention says."""
        before = 1
        if info.max_count is not None:
            before = info.version - info.max_count + 1
        if info.max_age is not None:
            cutoff = now - timedelta(seconds=info.max_age)
            before = max(before, await self._first_since(info, cutoff))
        wanted = before
        if info.aggregate_type is not None:  # loads need the events after the newest snapshot
            newest = await self.read_snapshots(info.stream_id, 1)
            before = min(before, newest[0].version + 1 if newest else 1)
        if before <= info.first_version:
            return Pruned(info.stream_id, 0, max(0, wanted - info.first_version))
        removed = await self.truncate_stream(info.stream_id, before)
        return Pruned(info.stream_id, removed, wanted - before)

    async def _first_since(self, info: StreamInfo, cutoff: datetime) -> int:
        """The version of the stream's first event recorded at or after ``cutoff``."""
        async for recorded in self.read_stream(info.stream_id, info.first_version):
            if recorded.recorded_at >= cutoff:
                return recorded.version
        return info.version + 1

    def _marker(self, stream_id: str, marker: object, metadata: Metadata | None) -> EncodedEvent:
        """A lifecycle marker, encoded as the recorder stores it."""
        event = marker if metadata is None else NewEvent(marker, metadata=metadata)
        self._check_open()
        return self._prepare(stream_id, [event], ExpectedVersion.ANY).events[0]

    # -- snapshots -------------------------------------------------------------------------

    async def write_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Store a snapshot (replacing one at the same stream version).

        Only the stream's ``SNAPSHOT_CANDIDATES`` newest snapshots are kept: older ones are
        deleted, since loads never look further back.
        """
        validate_stream_id(snapshot.stream_id)
        self._check_open()
        await self.recorder.write_snapshot(snapshot)

    async def read_snapshots(
        self, stream_id: str, limit: int = 3, *, fresh: Fresh = False
    ) -> list[SnapshotRecord]:
        """The stream's latest snapshots, newest first (``fresh`` as :meth:`read_stream`)."""
        validate_stream_id(stream_id)
        self._check_open()
        recorder = await self.recorder.reading(*where(fresh))
        return await recorder.read_snapshots(stream_id, limit)

    # -- personal data ---------------------------------------------------------------------

    async def forget(self, subject: str) -> bool:
        """Destroy ``subject``'s data key: its personal fields, in every event and snapshot,
        read back as ``facta.Forgotten`` from now on (other processes' stores: once their
        cached key expires, ``key_cache_seconds``). Whether it had a key; forgetting twice is
        harmless. Needs no key provider. Read models that copied the data must be rebuilt or
        told (docs/personal-data.md).
        """
        self._check_open()
        return await self._keychain.forget(subject)

    async def fetch_keys(self, rows: Sequence[StoredEvent]) -> DataKeys | None:
        """The data keys the sealed fields of ``rows`` (from the recorder) need, for
        :meth:`decode`; None when no row has sealed fields. A forgotten subject's key is None
        in it; a store without a key provider gives keys that refuse to open anything."""
        for row in rows:
            if row[7] >= SEALED:
                return await self._keychain.for_rows((r[7], r[8]) for r in rows)
        return None

    async def fetch_snapshot_keys(self, snapshots: Sequence[SnapshotRecord]) -> DataKeys | None:
        """The data keys the sealed fields of ``snapshots`` need (as :meth:`fetch_keys`)."""
        if not any(s.encoding >= SEALED for s in snapshots):  # every load asks: answer at once
            return None
        return await self._keychain.for_rows((s.encoding, s.state) for s in snapshots)

    async def subject_keys(self, subjects: Collection[str]) -> DataKeys | None:
        """The current data keys of ``subjects`` (made the first time), to seal their data
        with; None for no subjects."""
        return await self._keychain.current(subjects) if subjects else None

    async def rotate_master_key(self, to: KeyProvider, *, batch_size: int = 1000) -> int:
        """Re-wrap every subject's data key under ``to``'s master key (this store's key
        provider unwraps them); how many were re-wrapped. Resumable: keys already under
        ``to`` are left. Then open stores with ``to`` (a ``KeyRing(to, old)`` meanwhile)."""
        self._check_open()
        _check_batch_size(batch_size)
        return await self._keychain.rotate(to, batch_size)

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Release the store's connections; it cannot be used afterwards (closing twice is
        harmless)."""
        if not self._closed:
            self._closed = True
            await self.recorder.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"the event store ({self.recorder.location}) is closed; open a new one with "
                "facta.connect"
            )

    async def __aenter__(self) -> Self:
        return self

    def __enter__(self) -> NoReturn:  # sync: drop
        raise TypeError(  # sync: drop
            "an AsyncEventStore is an async context manager: use `async with`"  # sync: drop
            " (or facta.connect for a sync store)"  # sync: drop
        )  # sync: drop

    def __exit__(self, *exc_info: object) -> None:  # sync: drop
        """Never reached: ``__enter__`` refuses."""  # sync: drop

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _data_decoder(codec: Codec) -> Callable[[str, int, int, bytes], Any]:
    """``codec.decode`` for one read: each type's typed decoder is looked up once (again if a
    class is registered meanwhile); rows it does not take go through ``codec.decode``."""
    known: dict[str, tuple[int, Callable[[bytes], Any] | None]] = {}
    registry, slow = codec.registry, codec.decode
    generation = registry.generation

    def decode(type_name: str, schema_version: int, encoding: int, data: bytes) -> Any:
        nonlocal generation
        fast = known.get(type_name)
        if fast is None or generation != registry.generation:
            if generation != registry.generation:
                known.clear()
                generation = registry.generation
            fast = known[type_name] = codec.fast_decoder(type_name)
        if schema_version == fast[0] and encoding == PLAIN:
            try:
                return fast[1](data)  # type: ignore[misc]  # not None at that version
            except Exception:  # codec.decode says what is wrong
                pass
        return slow(type_name, schema_version, encoding, data)

    return decode


def _check_expected_version(stream_id: str, expected_version: object) -> None:
    if (
        not isinstance(expected_version, int)
        or isinstance(expected_version, bool)
        or expected_version < ExpectedVersion.STREAM_EXISTS
    ):
        raise InvalidEvent(
            f"expected version for stream {stream_id!r} must be ExpectedVersion.ANY, "
            f"NO_STREAM, STREAM_EXISTS or an int >= 0, got {expected_version!r}"
        )


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


def _check_checkpoint(after: object) -> None:
    if after is not None and not isinstance(after, Checkpoint):
        raise InvalidCheckpoint(
            f"after= takes a facta.Checkpoint (an event's .checkpoint, or "
            f"Checkpoint(transaction_id, position)), got {type(after).__name__} {after!r}"
        )
